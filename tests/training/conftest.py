"""A tiny synthetic tabular + embedding problem that trains in well under a second."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from mmfuse.data.tensors import TensorData
from mmfuse.models import ModelConfig, build_model
from mmfuse.tasks import create_task
from mmfuse.training import TrainConfig, Trainer
from mmfuse.types import InputSpec

SPECS = {
    "tabular": InputSpec("tabular", (3,), num_numeric=2, cardinalities=(4,)),
    "vec": InputSpec("embedding", (4,)),
}


def make_data(n: int, seed: int) -> TensorData:
    """Label = [numeric feature 0 + vec feature 1 > 0]: linearly separable; 10 % of vec missing."""
    g = torch.Generator().manual_seed(seed)
    numbers = torch.randn(n, 2, generator=g)
    codes = torch.randint(0, 4, (n, 1), generator=g).float()
    vec = torch.randn(n, 4, generator=g)
    present = torch.rand(n, generator=g) > 0.1
    vec = vec * present.unsqueeze(1)
    y = (numbers[:, 0] + vec[:, 1] > 0).float()
    mask = {"tabular": torch.ones(n, dtype=torch.bool), "vec": present}
    return TensorData({"tabular": torch.cat([numbers, codes], 1), "vec": vec}, mask, y)


@dataclass
class Problem:
    train: TensorData
    valid: TensorData


@pytest.fixture(scope="session")
def problem() -> Problem:
    torch.set_num_threads(1)
    return Problem(make_data(256, 1), make_data(128, 2))


TrainerFactory = Callable[..., Trainer]


@pytest.fixture
def make_trainer() -> TrainerFactory:
    """Builds a fresh model (seeded) and a Trainer; keyword arguments go to TrainConfig."""

    def factory(
        checkpoint_dir: Path | None = None, model_seed: int = 0, **train: object
    ) -> Trainer:
        settings = {"epochs": 3, "batch_size": 32, "device": "cpu", "augment": "none", "lr": 1e-2}
        settings.update(train)
        torch.manual_seed(model_seed)
        config = ModelConfig(
            "feature", "concat", {"tabular": "mlp", "vec": "mlp"}, "classification", 2, dim=16
        )
        model = build_model(config, SPECS)
        return Trainer(
            model,
            create_task("classification", 2),
            SPECS,
            TrainConfig(**settings),  # type: ignore[arg-type]
            checkpoint_dir=checkpoint_dir,
            verbose=False,
        )

    return factory
