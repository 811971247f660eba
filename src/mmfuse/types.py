"""Plain types shared by every layer: field kinds, input specs, batches and model outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # plain data: reading a schema or a config never imports torch
    from torch import Tensor

FIELD_KINDS = ("image", "text", "audio", "video", "numeric", "categorical", "embedding")
"""Kinds a column can have. numeric + categorical columns together form the `tabular` modality."""

MODALITY_KINDS = ("image", "text", "audio", "video", "tabular", "embedding")
"""Kinds a modality (one input stream with one encoder) can have."""

Embeddings = Mapping[str, "Tensor"]
"""{modality: (B, D_m)} tensors."""

Mask = Mapping[str, "Tensor"]
"""{modality: (B,) bool} presence mask; False means the modality is missing for that sample."""


@dataclass(frozen=True)
class InputSpec:
    """What one modality's preprocessed input looks like, so a builder can size its encoder.

    Per-kind input tensors (batch first):
      image (B, 3, H, W) float, normalised; text (B, L) int64 token ids, 0 = padding;
      audio (B, n_mels, T) float log-mel; video (B, N, 3, H, W) float frames;
      tabular (B, num_numeric + len(cardinalities)) float, numeric first, then categorical codes
      (stored as floats, 0 = missing, 1 = unknown); embedding (B, D) float.

    Attributes:
        kind: One of MODALITY_KINDS.
        shape: Per-sample input shape (without the batch dimension).
        vocab_size: Text vocabulary size including padding and unknown tokens.
        num_numeric: Tabular: number of numeric features (first columns).
        cardinalities: Tabular: vocabulary size of each categorical feature.
        backbone: Name of the pretrained network whose preparation produced this input
            ("" for the from-scratch preprocessing above).
        features: True when the input is that network's frozen output, (B, D) or, for the
            frames of a clip, (B, N, D), rather than its prepared input.
    """

    kind: str
    shape: tuple[int, ...]
    vocab_size: int = 0
    num_numeric: int = 0
    cardinalities: tuple[int, ...] = field(default_factory=tuple)
    backbone: str = ""
    features: bool = False
