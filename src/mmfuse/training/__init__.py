"""Training: one readable trainer, atomic checkpoints, device selection."""

from mmfuse.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
