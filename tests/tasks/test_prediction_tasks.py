"""Tests for mmfuse.tasks' classification and regression tasks on a model's ModelOutput."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmfuse.models.multimodal import ModelOutput
from mmfuse.tasks import ClassificationTask, RegressionTask, create_task

LOGITS = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
LABELS = torch.tensor([0.0, 1.0, 1.0])


def test_classification_loss_eval_loss_and_predict_read_the_logits() -> None:
    task = create_task("classification", 2)
    out = ModelOutput(LOGITS, None, {})
    assert task.loss(out, LABELS)["loss"].item() == F.cross_entropy(LOGITS, LABELS.long()).item()
    assert task.eval_loss(out, LABELS).item() == F.cross_entropy(LOGITS, LABELS.long()).item()
    assert torch.equal(task.predict(ModelOutput(LOGITS.double(), None, {})), LOGITS.softmax(-1))


def test_classification_eval_loss_is_unweighted_and_late_loss_uses_present_rows() -> None:
    task = ClassificationTask(2, [1.0, 3.0])
    per = {"x": LOGITS, "y": LOGITS.flip(1)}
    mask = {"x": torch.tensor([True, True, True]), "y": torch.tensor([False, True, True])}
    late = task.loss(ModelOutput(LOGITS, per, mask), LABELS)["loss"]
    weight = torch.tensor([1.0, 3.0])
    expected = (F.cross_entropy(LOGITS, LABELS.long(), weight=weight)
                + F.cross_entropy(LOGITS.flip(1)[1:], LABELS.long()[1:], weight=weight)) / 2
    assert late.item() == pytest.approx(expected.item(), rel=1e-6)
    assert task.eval_loss(ModelOutput(LOGITS, per, mask), LABELS).item() == pytest.approx(
        F.cross_entropy(LOGITS, LABELS.long()).item(), rel=1e-6
    )


def test_regression_loss_eval_loss_and_predict_read_the_values() -> None:
    task = RegressionTask()
    values = torch.tensor([[0.5], [1.0], [-1.0]])
    out = ModelOutput(values, None, {})
    assert task.loss(out, LABELS)["loss"].item() == pytest.approx((0.25 + 0.0 + 4.0) / 3)
    assert task.eval_loss(out, LABELS).item() == pytest.approx((0.25 + 0.0 + 4.0) / 3)
    assert torch.equal(task.predict(out), torch.tensor([0.5, 1.0, -1.0]))


@pytest.mark.parametrize("task", [ClassificationTask(2), RegressionTask()])
def test_an_output_without_logits_is_refused(task: object) -> None:
    embeddings = ModelOutput(None, None, {}, {"a": torch.zeros(3, 2)}, torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"no logits, only embeddings of \['a'\]"):
        task.predict(embeddings)  # type: ignore[attr-defined]


def test_auxiliary_heads_add_their_weighted_per_modality_loss() -> None:
    from mmfuse.tasks.per_modality import AUXILIARY_WEIGHT

    aux = {"x": LOGITS.flip(1), "y": LOGITS * 2}
    mask = {"x": torch.tensor([True, False, True]), "y": torch.tensor([True, True, True])}
    y = LABELS.long()
    got = create_task("classification", 2).loss(ModelOutput(LOGITS, None, mask, auxiliary=aux), LABELS)["loss"]
    side = (F.cross_entropy(LOGITS.flip(1)[[0, 2]], y[[0, 2]]) + F.cross_entropy(LOGITS * 2, y)) / 2
    assert got.item() == pytest.approx((F.cross_entropy(LOGITS, y) + AUXILIARY_WEIGHT * side).item(), rel=1e-6)
    values = torch.tensor([[0.5], [1.0], [-1.0]])
    aux = {"x": values * 2, "y": values - 1}
    got = RegressionTask().loss(ModelOutput(values, None, mask, auxiliary=aux), LABELS)["loss"]
    side = (F.mse_loss((values * 2).squeeze(-1)[[0, 2]], LABELS[[0, 2]]) + F.mse_loss((values - 1).squeeze(-1), LABELS)) / 2
    assert got.item() == pytest.approx((F.mse_loss(values.squeeze(-1), LABELS) + AUXILIARY_WEIGHT * side).item(), rel=1e-6)
