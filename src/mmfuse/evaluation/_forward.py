"""Forward passes shared by the explanation tools: encode once, then vary only the mask."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.preprocess import Encoded
from mmfuse.data.row_buffer import RowBuffer
from mmfuse.data.tensors import TensorData
from mmfuse.models.multimodal import MultimodalModel

TASKS = ("classification", "regression")


def check_task(task: str) -> None:
    """Raises ValueError unless ``task`` is "classification" or "regression"."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")


def predict(logits: Tensor, task: str) -> Tensor:
    """Class probabilities (B, C) or values (B,) from a model's logits (as the tasks do)."""
    return logits.float().softmax(-1) if task == "classification" else logits.float().squeeze(-1)


@torch.no_grad()
def embeddings_of(model: MultimodalModel, enc: Encoded, batch_size: int = 256,
                  rows: np.ndarray | None = None, guarded: bool = True) -> TensorData:
    """Every record's encoder outputs (zero where missing) with its mask, in record order
    (``rows``: only those records, in that order). ``guarded``: the mask without the modalities
    whose feature vector the model's guard distrusts (``ModalityGuard.check_inputs``), as
    the model's forward pass has it (their embeddings are zero); the guard's embedding test is
    left to the model given these embeddings (``on_embeddings``).

    Runs in eval mode on the model's device and returns CPU tensors; the model's train/eval
    mode is restored afterwards.
    """
    data = TensorData.from_encoded(enc)
    if rows is not None:
        data = data.subset(rows)
    if not isinstance(model, MultimodalModel):  # an ensemble: its members encode, the mask varies
        return data
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    buffer = RowBuffer(len(data))
    was_training = model.training
    model.eval()
    try:
        for index in torch.arange(len(data)).split(batch_size):
            batch = data.batch(index, device)
            mask = batch.mask
            if guarded and model.guard is not None:
                mask = model.guard.check_inputs(batch.inputs, mask)
            for m, z in model.encode(batch.inputs, mask).items():
                buffer.add(m, z.float())
                buffer.add(("mask", m), mask[m].cpu())
    finally:
        model.train(was_training)
    inputs = {
        m: buffer.get(m) if m in buffer else torch.zeros(0, int(model.encoders[m].output_dim))
        for m in model.modalities
    }
    masks = {m: buffer.get(("mask", m)) if m in buffer else data.mask[m] for m in model.modalities}
    return TensorData(inputs, masks, data.targets)


def on_embeddings(model: MultimodalModel) -> MultimodalModel:
    """The same model (shared modules) with identity encoders: it takes encoder outputs.

    Encoders never see the mask (``encode`` zeroes missing rows after them), so encoding once
    and then changing the mask gives exactly what the full forward pass gives, without
    running the encoders again for every coalition.
    """
    if not isinstance(model, MultimodalModel):  # an ensemble takes its inputs as they are
        return model.eval()
    return model.on_embeddings()


@torch.no_grad()
def outputs_under(
    model: MultimodalModel,
    data: TensorData,
    task: str,
    mask: Mapping[str, Tensor],
    batch_size: int = 256,
) -> Tensor:
    """Predictions of ``model`` on ``data.inputs`` under ``mask``: (N, C) or (N,)."""
    if len(data) == 0:
        raise ValueError("no records to explain")
    buffer = RowBuffer(len(data))
    for index in torch.arange(len(data)).split(batch_size):
        inputs = {m: x[index] for m, x in data.inputs.items()}
        out = model(inputs, {m: v[index] for m, v in mask.items()})
        buffer.add("outputs", predict(out.require_logits(), task))
    return buffer.get("outputs")
