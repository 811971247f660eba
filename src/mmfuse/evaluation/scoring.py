"""The metrics of a fitted model on prepared, labelled records."""

from __future__ import annotations

import numpy as np

from mmfuse.data.preprocess import Encoded
from mmfuse.errors import MmfuseError
from mmfuse.evaluation.metrics import task_metrics
from mmfuse.models.fitted import FittedModel


def score(fitted: FittedModel, enc: Encoded, outputs: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of the task (SPEC §4) on ``enc``, which must carry its targets;
    ``outputs``: the model's outputs on ``enc`` when already computed (``FittedModel.run``)."""
    if len(enc) == 0:
        raise MmfuseError("no records to evaluate")
    if enc.targets is None:
        raise MmfuseError("these records have no target values to score against")
    if outputs is None:
        outputs = fitted.outputs(enc)
    return task_metrics(fitted.task, fitted.decode(enc.targets), fitted.decode(outputs))
