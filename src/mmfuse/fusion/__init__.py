"""Fusion operators: one per file, registered by name, each with a ``level`` attribute.

Feature- and data-level operators: ``cls(input_dims: {modality: D_m}, dim=..., **hparams)``,
``forward(embeddings {m: (B, D_m)}, mask {m: (B,) bool}) -> (B, output_dim)``.
Decision-level operators: ``cls(input_dims: {modality: C}, task="classification"|"regression")``,
``forward(outputs {m: (B, C)}, mask) -> (B, C)`` combining per-modality predictions (logits for
classification, values for regression); the result is again logits / values.
Every operator gives a finite output when any subset of modalities (even all) is missing.

Adding an operator is one new file here with ``@register_fusion("name")`` on its class (plus its
test): the registry imports every module of this package on first use, so no import line is
needed, and ``tests/test_registry_discovery.py`` fails on an operator class left unregistered
(mark a building block with ``mmfuse._registry.unregistered``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mmfuse._registry import Registry

if TYPE_CHECKING:
    from torch import nn

FUSIONS: Registry[type[nn.Module]] = Registry("fusion", package=__name__)
LEVELS = ("early", "feature", "late")
DEFAULT_FUSION = {"early": "early_concat", "feature": "attention", "late": "mean"}


def register_fusion(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a fusion operator under ``name``."""
    return FUSIONS.register(name)


def create_fusion(name: str, input_dims: Mapping[str, int], **hparams: Any) -> nn.Module:
    """Builds fusion operator ``name`` for modalities with the given dimensions."""
    return FUSIONS.get(name)(dict(input_dims), **hparams)


def list_fusions(level: str | None = None) -> list[str]:
    """Registered fusion names, optionally only those of one level."""
    return [n for n in FUSIONS.names() if level is None or FUSIONS.get(n).level == level]


def fusion_level(name: str) -> str:
    """The level ("early", "feature" or "late") of fusion ``name``."""
    return str(FUSIONS.get(name).level)

