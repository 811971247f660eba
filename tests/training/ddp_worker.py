"""Trains a small dropout-free model with the Trainer; run under torchrun by test_distributed.py,
or imported and run in one process. Writes OUT/rank<r>.pt: the weights and the history."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from mmfuse.data.tensors import TensorData
from mmfuse.models.multimodal import ModelOutput
from mmfuse.tasks import create_task
from mmfuse.training import TrainConfig, Trainer, distributed
from mmfuse.types import InputSpec

SPECS = {"x": InputSpec("embedding", (6,))}


class Linear2(nn.Module):
    """Two linear layers, nothing random in the forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, inputs: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> ModelOutput:
        return ModelOutput(self.net(inputs["x"]), None, mask)


def data(n: int, seed: int) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] - x[:, 3] > 0).float()
    return TensorData({"x": x}, {"x": torch.ones(n, dtype=torch.bool)}, y)


def train(out: Path) -> None:
    torch.manual_seed(0)
    model = Linear2()
    config = TrainConfig(epochs=4, batch_size=32, lr=0.01, patience=0, augment="none", modality_dropout=0.0)
    trainer = Trainer(model, create_task("classification", 2), SPECS, config, verbose=False)
    history = trainer.fit(data(256, 1), data(64, 2))
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    torch.save({"weights": model.state_dict(), "history": history}, out / f"rank{distributed.rank()}.pt")


if __name__ == "__main__":
    joined = distributed.start("cpu")
    try:
        train(Path(sys.argv[1]))
    finally:
        if joined:
            distributed.stop()
