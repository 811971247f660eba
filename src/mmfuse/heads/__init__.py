"""Prediction heads: map a fused vector to task outputs."""

from mmfuse.heads.mlp import MLPHead

__all__ = ["MLPHead"]
