"""A fitted model as one value: the trained network, its architecture and the preprocessing that
feeds it, plus how to run it. Evaluation, explanation and serving take this value; they never
need the estimator that produced it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.data.row_buffer import RowBuffer
from mmfuse.data.tensors import TensorData
from mmfuse.errors import MmfuseError
from mmfuse.models.builder import ModelConfig
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.tasks import create_task


@dataclass(frozen=True)
class FittedModel:
    """A trained classifier or regressor and its preprocessing.

    Attributes:
        model: The network (eval mode).
        config: Its architecture (task, level, fusion, encoders, outputs).
        preprocessor: The fitted preprocessing of its input table.
        batch_size: Records per forward pass.
        num_threads: Threads for decoding media (None: all cores).
        on_bad_record: "raise" or "skip" when preparing new records.
        missing_files: "error" or "missing".
    """

    model: MultimodalModel
    config: ModelConfig
    preprocessor: Preprocessor
    batch_size: int = 256
    num_threads: int | None = None
    on_bad_record: str = "raise"
    missing_files: str = "error"

    @property
    def task(self) -> str:
        return self.config.task

    def outputs(self, enc: Encoded) -> np.ndarray:
        """Class probabilities (N, C) or standardised regression values (N,), in record order."""
        return self.run(enc)[0]

    @torch.no_grad()
    def run(self, enc: Encoded) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``outputs``, and modality -> (N,) bool: the records where the model's guard
        (``models.guard``) turned that present modality off (all False without a guard)."""
        self.model.eval()
        data = TensorData.from_encoded(enc)
        task = create_task(self.config.task, self.config.num_outputs)
        buffer = RowBuffer(len(data))
        for index in torch.arange(len(data)).split(max(self.batch_size, 1)) if len(data) else ():
            batch = data.batch(index, torch.device("cpu"))
            out = self.model(batch.inputs, batch.mask)
            buffer.add("outputs", task.predict(out))
            for m in batch.mask:
                buffer.add(m, batch.mask[m] & ~out.mask[m])
        distrusted = {m: buffer.get(m).numpy() if m in buffer else np.zeros(0, dtype=bool) for m in data.mask}
        if "outputs" not in buffer:
            width = self.config.num_outputs
            return np.zeros((0, width) if self.task == "classification" else (0,)), distrusted
        return buffer.get("outputs").numpy(), distrusted

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Regression: standardised values back in the target's units (classification: as is)."""
        if self.task == "classification":
            return values
        return self.preprocessor.fitted_target.decode(values)


def as_fitted(source: Any) -> FittedModel:
    """A FittedModel, or the ``fitted_model`` of an object that has one (a fitted estimator)."""
    if isinstance(source, FittedModel):
        return source
    fitted = getattr(source, "fitted_model", None)
    if not isinstance(fitted, FittedModel):
        raise MmfuseError(f"expected a fitted model, got {type(source).__name__}")
    return fitted
