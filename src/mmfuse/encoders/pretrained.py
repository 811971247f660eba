"""Pretrained encoders: a packaged network (frozen or fine-tuned) plus a trainable projection.

Frozen (the default), the network has already run during preprocessing: the input is its
cached feature vector ``(B, D)`` (``(B, N, D)`` for the frames of a clip; ``spec.features`` is
True) and this module holds only the projection. Fine-tuned (``--finetune KIND``), the input is
the network's prepared input (224-px ImageNet crops, WordPiece ids, mel partials) and the
network is a trainable submodule named ``backbone`` (the trainer gives it a lower learning rate).

Output ``(B, dim)``, through the ``adapter``: "mlp" (LayerNorm, dropout, linear, GELU; the
default) or "none" (the network's features themselves, ``(B, width)``: a retrieval model then
learns a linear projection of them, which generalises better from few pairs). Video clips are
pooled over frames with ``temporal`` = mean | attention.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmfuse._registry import unregistered
from mmfuse.encoders import register_encoder
from mmfuse.encoders.backbones import load_backbone, run_backbone
from mmfuse.pretrained import BACKBONES
from mmfuse.types import InputSpec

TEMPORAL_POOLING = ("mean", "attention")
ADAPTERS = ("mlp", "none")
Z_MAX = 5.0
"""Standardised features are clipped to +-Z_MAX: a dimension that barely varied in training can
reach |z| > 10 on a new image and drown the others. Measured (EfficientNet, 3 seeds): handwritten
digits .940 unclipped -> .957; caption->image R@1 on new drawn shapes .715 -> .796 (.818 raw)."""


@unregistered("the shared base class; each subclass is registered for one backbone")
class PretrainedEncoder(nn.Module):
    """Base class; subclasses set ``backbone_name``.

    Args:
        spec: Input spec (``spec.features``: frozen features; otherwise the prepared input).
        dim: Output dimension.
        temporal: Pooling over the frames of a clip ("mean" or "attention").
        dropout: Dropout on the features before the projection.
        adapter: "mlp" (project to ``dim``) or "none" (output the features; ``dim`` unused).
    """

    backbone_name = ""
    reads = ("decoded", "features")  # the network's prepared input (fine-tuned) or its features

    def __init__(
        self,
        spec: InputSpec,
        dim: int = 128,
        temporal: str = "mean",
        dropout: float = 0.1,
        adapter: str = "mlp",
    ) -> None:
        super().__init__()
        if adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {adapter!r}; choose one of: {', '.join(ADAPTERS)}")
        if temporal not in TEMPORAL_POOLING:
            raise ValueError(
                f"unknown temporal pooling {temporal!r}; choose one of: {', '.join(TEMPORAL_POOLING)}"
            )
        if spec.backbone and spec.backbone != self.backbone_name:
            raise ValueError(
                f"input prepared for {spec.backbone!r}, not for {self.backbone_name!r}"
            )
        info = BACKBONES[self.backbone_name]
        width = info.dim
        self.frozen = spec.features
        standardized = info.standardized()
        self.standardize = any(standardized)
        if self.standardize:  # training statistics, set by fit_statistics before training
            self.register_buffer("feature_mean", torch.zeros(width))
            self.register_buffer("feature_std", torch.ones(width))
            self.register_buffer("standardized", torch.tensor(standardized), persistent=False)
        self.clips = spec.kind == "video"
        if self.frozen and spec.shape[-1] != width:
            raise ValueError(f"{self.backbone_name} features have {width} values, spec says {spec.shape}")
        self.backbone = None if self.frozen else load_backbone(self.backbone_name, trainable=True)
        self.temporal = temporal
        if self.clips and temporal == "attention":
            self.query = nn.Parameter(torch.randn(width) / math.sqrt(width))
        if adapter == "none":
            self.proj, self.output_dim = nn.Identity(), width
        else:
            norm = PartsNorm([BACKBONES[p].dim for p in info.parts]) if info.parts else nn.LayerNorm(width)
            self.proj = nn.Sequential(norm, nn.Dropout(dropout), nn.Linear(width, dim), nn.GELU())
            self.output_dim = dim

    def features(self, x: Tensor) -> Tensor:
        """The network's features of ``x`` (standardised where the network asks for it, clipped
        to +-``Z_MAX``)."""
        if self.backbone is not None:
            x = run_backbone(self.backbone, self.backbone_name, x)
        x = x.float()
        if not self.standardize:
            return x
        return ((x - self.feature_mean) / self.feature_std).clamp(-Z_MAX, Z_MAX)

    @torch.no_grad()
    def fit_statistics(self, x: Tensor, max_rows: int = 1024, chunk: int = 64) -> None:
        """Sets the standardisation of the features the network asks for (``standardized``)
        from training inputs ``x`` (present rows only). Through a fine-tuned network, at most
        ``max_rows`` evenly spaced rows, ``chunk`` at a time on the network's device. A feature
        that does not vary keeps a scale of 1."""
        if not self.standardize or len(x) == 0:
            return
        device = self.feature_mean.device
        if self.backbone is not None:
            if len(x) > max_rows:
                x = x[torch.linspace(0, len(x) - 1, max_rows).long()]
            was_training = self.backbone.training
            self.backbone.eval()
            x = torch.cat([run_backbone(self.backbone, self.backbone_name, part.to(device)).float().cpu()
                           for part in x.split(chunk)])
            self.backbone.train(was_training)
        flat = x.double().reshape(-1, x.shape[-1]).cpu()
        std = flat.std(0, unbiased=False) if len(flat) > 1 else torch.zeros(flat.shape[1], dtype=flat.dtype)
        keep = self.standardized.cpu()
        mean = torch.where(keep, flat.mean(0), torch.zeros_like(std))
        self.feature_mean.copy_(mean.float())
        self.feature_std.copy_(torch.where(keep & (std > 1e-8), std, torch.ones_like(std)).float())

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if self.clips:  # (B, N, D) -> (B, D)
            if self.temporal == "attention":
                scores = x @ self.query / math.sqrt(x.shape[-1])  # (B, N)
                x = (scores.softmax(dim=1).unsqueeze(-1) * x).sum(1)
            else:
                x = x.mean(1)
        return self.proj(x)


def with_identity_statistics(model: nn.Module, weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """``weights`` with a standardisation that changes nothing (mean 0, scale 1) for each
    encoder of ``model`` that standardises but has no statistics there: a model saved before its
    network's features were standardised by default loads and predicts as it did."""
    filled = dict(weights)
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, PretrainedEncoder) and module.standardize and f"{prefix}feature_mean" not in weights:
            filled[f"{prefix}feature_mean"] = torch.zeros_like(module.feature_mean)
            filled[f"{prefix}feature_std"] = torch.ones_like(module.feature_std)
    return filled


@unregistered("a layer of the pretrained encoders of composite networks")
class PartsNorm(nn.Module):
    """LayerNorm over each part of a feature vector on its own (a composite network's parts,
    e.g. voice 768 + prosody 88): one LayerNorm over all of them would let the part with the
    larger values set the scale and flatten the other."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.widths = list(widths)
        self.norms = nn.ModuleList(nn.LayerNorm(w) for w in self.widths)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([norm(part) for norm, part in zip(self.norms, x.split(self.widths, dim=-1))], dim=-1)


@register_encoder("image", "efficientnet-lite0")
class EfficientNetLite0Encoder(PretrainedEncoder):
    """EfficientNet-Lite0 (ImageNet) image features, 1440-d, projected to ``dim``."""

    backbone_name = "efficientnet-lite0"


@register_encoder("video", "efficientnet-lite0")
class EfficientNetLite0VideoEncoder(PretrainedEncoder):
    """EfficientNet-Lite0 features of every sampled frame, pooled over time."""

    backbone_name = "efficientnet-lite0"


@register_encoder("text", "minilm")
class MiniLMEncoder(PretrainedEncoder):
    """all-MiniLM-L6-v2 sentence embeddings, 384-d, projected to ``dim``."""

    backbone_name = "minilm"


@register_encoder("audio", "voice")
class VoiceEncoder(PretrainedEncoder):
    """Resemblyzer voice encoder features (speaker + content), 768-d, projected to ``dim``."""

    backbone_name = "voice"


@register_encoder("audio", "prosody")
class ProsodyEncoder(PretrainedEncoder):
    """openSMILE eGeMAPS functionals (how it is said), 88-d standardised, projected to ``dim``."""

    backbone_name = "prosody"


@register_encoder("audio", "voice+prosody")
class VoiceProsodyEncoder(PretrainedEncoder):
    """Voice encoder features and eGeMAPS functionals side by side (who speaks, what is said
    and how), 856-d standardised, projected to ``dim``."""

    backbone_name = "voice+prosody"
