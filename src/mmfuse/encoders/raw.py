"""Parameter-free "raw" encoders: a fixed vector per sample, for data-level (early) fusion.

Each one pools or flattens the preprocessed input of its kind into a vector of fixed length;
none has trainable parameters, so the fusion operator sees (nearly) the raw data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.encoders import register_encoder
from mmfuse.types import InputSpec


def _check_rank(spec: InputSpec, rank: int, layout: str) -> None:
    if len(spec.shape) != rank:
        raise ValueError(f"{spec.kind} spec shape must be {layout}, got {spec.shape}")


@register_encoder("image", "raw")
class ImageRawEncoder(nn.Module):
    """Average-pools the image to ``size x size`` and flattens it: ``C * size**2`` features.

    Args:
        spec: Input spec; ``spec.shape`` is ``(C, H, W)``.
        size: Side of the pooled image.
    """

    def __init__(self, spec: InputSpec, size: int = 8) -> None:
        super().__init__()
        _check_rank(spec, 3, "(C, H, W)")
        self.size = size
        self.output_dim = spec.shape[0] * size * size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.size).flatten(1)


@register_encoder("text", "raw")
class TextRawEncoder(nn.Module):
    """Bag of words: how often each token id occurs, padding excluded, L1-normalised.

    An all-padding row gives zeros. Output ``(B, vocab_size)``.

    Args:
        spec: Input spec; uses ``spec.vocab_size``.
    """

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        if spec.vocab_size < 2:
            raise ValueError(f"text spec needs vocab_size >= 2, got {spec.vocab_size}")
        self.output_dim = spec.vocab_size

    def forward(self, x: Tensor) -> Tensor:
        counts = torch.zeros(x.shape[0], self.output_dim, device=x.device)
        counts.scatter_add_(1, x, (x != 0).to(counts.dtype))  # (B, V); padding adds 0
        return counts / counts.sum(dim=1, keepdim=True).clamp(min=1.0)


@register_encoder("audio", "raw")
class AudioRawEncoder(nn.Module):
    """Mean and standard deviation over time of every mel band: ``2 * n_mels`` features.

    Args:
        spec: Input spec; ``spec.shape`` is ``(n_mels, T)``.
    """

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        _check_rank(spec, 2, "(n_mels, T)")
        self.output_dim = 2 * spec.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        std, mean = torch.std_mean(x, dim=2, unbiased=False)  # (B, n_mels) each
        return torch.cat([mean, std], dim=1)


@register_encoder("video", "raw")
class VideoRawEncoder(nn.Module):
    """Mean frame, average-pooled to ``size x size`` and flattened: ``C * size**2`` features.

    Args:
        spec: Input spec; ``spec.shape`` is ``(N, C, H, W)``.
        size: Side of the pooled frame.
    """

    def __init__(self, spec: InputSpec, size: int = 8) -> None:
        super().__init__()
        _check_rank(spec, 4, "(N, C, H, W)")
        self.size = size
        self.output_dim = spec.shape[1] * size * size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x.mean(dim=1), self.size).flatten(1)


@register_encoder("tabular", "raw")
class TabularRawEncoder(nn.Module):
    """Numeric features as they are, then a one-hot vector per categorical feature.

    Output ``(B, num_numeric + sum(cardinalities))``. Codes outside ``[0, cardinality)`` are
    clipped into it.

    Args:
        spec: Input spec; uses ``spec.num_numeric`` and ``spec.cardinalities``.
    """

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        self.num_numeric = spec.num_numeric
        self.cardinalities = tuple(spec.cardinalities)
        self.output_dim = self.num_numeric + sum(self.cardinalities)
        if self.output_dim == 0:
            raise ValueError("tabular spec has no numeric and no categorical features")

    def forward(self, x: Tensor) -> Tensor:
        parts = [x[:, : self.num_numeric]]
        codes = x[:, self.num_numeric :].long()  # (B, num_categorical)
        for i, card in enumerate(self.cardinalities):
            parts.append(F.one_hot(codes[:, i].clamp(0, card - 1), card).to(x.dtype))
        return torch.cat(parts, dim=1)


@register_encoder("embedding", "raw")
class EmbeddingRawEncoder(nn.Module):
    """The embedding vectors unchanged: ``D`` features.

    Also the raw form of frozen pretrained features (``spec.features``): a clip's per-frame
    features (N, D) are flattened to ``N * D``.

    Args:
        spec: Input spec; ``spec.shape`` is ``(D,)`` (or any shape when ``spec.features``).
    """

    reads = ("decoded", "features")

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        if not spec.features:
            _check_rank(spec, 1, "(D,)")
        self.output_dim = math.prod(spec.shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)
