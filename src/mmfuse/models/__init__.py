"""Models: composition of encoders, a fusion operator and heads."""

from mmfuse.models.builder import ModelConfig, build_model
from mmfuse.models.multimodal import ModelOutput, MultimodalModel

__all__ = ["ModelConfig", "ModelOutput", "MultimodalModel", "build_model"]
