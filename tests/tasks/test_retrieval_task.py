"""Tests for mmfuse.tasks.retrieval: positives, symmetric multi-positive InfoNCE, the task on a
retrieval model's output (embeddings and logit scale, no logits)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmfuse.models.multimodal import ModelOutput
from mmfuse.tasks.retrieval import EVAL_BATCH, RetrievalTask, info_nce, positives


def output(za: torch.Tensor, zb: torch.Tensor, scale: float) -> ModelOutput:
    """A retrieval model's output: side "a" and side "b" embeddings and the logit scale."""
    return ModelOutput(None, None, {}, {"a": za, "b": zb}, torch.tensor(scale))


def nce(za: torch.Tensor, zb: torch.Tensor, scale: float, items: torch.Tensor) -> torch.Tensor:
    return info_nce(za, zb, torch.tensor(scale), items)


def distinct(b: int) -> torch.Tensor:
    """Item ids where every row is its own image and its own caption."""
    return torch.arange(b).repeat(2, 1).T.contiguous()


def random_unit(b: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(b, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_info_nce_2x2_matches_hand_computation() -> None:
    # sim = 2 * za @ zb.T = [[1.2, 0.0], [1.6, 2.0]]
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zb = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    a_to_b = [math.log(1 + math.exp(-1.2)), math.log(1 + math.exp(-0.4))]  # rows of sim
    b_to_a = [math.log(1 + math.exp(0.4)), math.log(1 + math.exp(-2.0))]  # rows of sim.T
    expected = (sum(a_to_b) / 2 + sum(b_to_a) / 2) / 2
    loss = nce(za, zb, 2.0, distinct(2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_of_uniform_similarities_is_log_batch_size() -> None:
    z = torch.zeros(4, 3)
    z[:, 0] = 1.0  # every pair has cosine 1: no row can be told apart
    assert nce(z, z, 10.0, distinct(4)).item() == pytest.approx(math.log(4), rel=1e-6)


def test_perfectly_aligned_embeddings_with_a_large_scale_give_loss_near_zero() -> None:
    z = torch.eye(5)
    assert nce(z, z, 100.0, distinct(5)).item() < 1e-6
    assert nce(z, z, 1.0, distinct(5)).item() > 0.5  # the scale is what sharpens it


def test_positives_are_rows_sharing_either_item() -> None:
    items = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 2], [3, 3]])  # rows 0,1 share an image;
    expected = torch.tensor(  # rows 2,3 share a caption text
        [
            [1, 1, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(positives(items), expected)


def test_two_captions_of_one_image_are_positives_not_negatives() -> None:
    image = F.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=1)
    other = F.normalize(torch.tensor([[0.0, 0.0, 1.0]]), dim=1)
    za = torch.cat([image, image, other])  # rows 0 and 1: the same image
    zb = F.normalize(torch.tensor([[1.0, 0.2, 0.0], [1.0, -0.2, 0.0], [0.0, 0.1, 1.0]]), dim=1)
    shared = nce(za, zb, 10.0, torch.tensor([[0, 0], [0, 1], [1, 2]]))
    as_negatives = nce(za, zb, 10.0, distinct(3))
    # both captions match their image: nothing left to learn once they count as positives,
    # while as negatives the image must tell its own caption from its twin (about log 2 per row)
    assert shared.item() < 1e-3
    assert as_negatives.item() > 0.3


def test_info_nce_is_symmetric_in_the_two_sides() -> None:
    za, zb = random_unit(6, 4, 0), random_unit(6, 4, 1)
    items = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 3], [3, 3], [4, 4]])
    forward = nce(za, zb, 3.0, items)
    swapped = nce(zb, za, 3.0, items.flip(1))
    assert swapped.item() == pytest.approx(forward.item(), rel=1e-6)
    assert forward.item() > 0


def test_gradients_reach_both_sides_and_the_scale() -> None:
    za = random_unit(4, 3, 2).requires_grad_()
    zb = random_unit(4, 3, 3).requires_grad_()
    scale = torch.tensor(5.0, requires_grad=True)
    info_nce(za, zb, scale, distinct(4)).backward()
    for grad in (za.grad, zb.grad, scale.grad):
        assert grad is not None
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


def test_task_loss_eval_loss_and_predict_read_the_embeddings_and_the_scale() -> None:
    task = RetrievalTask(("a", "b"))
    za, zb = random_unit(3, 4, 4), random_unit(3, 4, 5)
    items = distinct(3)
    out = task.loss(output(za, zb, 4.0), items)
    assert set(out) == {"loss"}
    assert out["loss"].item() == nce(za, zb, 4.0, items).item()
    assert task.eval_loss(output(za, zb, 4.0), items).item() == out["loss"].item()
    predicted = task.predict(output(za.double(), zb.double(), 4.0))
    assert predicted.dtype == torch.float32
    assert predicted.shape == (3, 2, 4)
    assert torch.equal(predicted[:, 0], za) and torch.equal(predicted[:, 1], zb)


def test_the_pair_decides_which_side_is_a() -> None:
    za, zb = random_unit(4, 3, 8), random_unit(4, 3, 9)
    items = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 2]])
    swapped = RetrievalTask(("b", "a"))
    assert torch.equal(swapped.predict(output(za, zb, 2.0))[:, 0], zb)
    loss = swapped.loss(output(za, zb, 2.0), items)["loss"]
    assert loss.item() == nce(zb, za, 2.0, items).item()


def test_eval_loss_averages_batches_of_256() -> None:
    assert EVAL_BATCH == 256  # as many rows as the trainer predicts at once
    za, zb, items = random_unit(300, 4, 6), random_unit(300, 4, 7), distinct(300)
    head = nce(za[:256], zb[:256], 2.0, items[:256])
    expected = (head + nce(za[256:], zb[256:], 2.0, items[256:])) / 2
    assert RetrievalTask(("a", "b")).eval_loss(output(za, zb, 2.0), items).item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_an_output_without_embeddings_is_refused_naming_what_is_missing() -> None:
    task = RetrievalTask(("a", "b"))
    with pytest.raises(ValueError, match="needs an output with embeddings and a logit scale"):
        task.loss(ModelOutput(torch.zeros(2, 3), None, {}), distinct(2))
    embeddings = {"a": random_unit(2, 3, 0), "c": random_unit(2, 3, 1)}
    other = ModelOutput(None, None, {}, embeddings, torch.tensor(1.0))
    with pytest.raises(ValueError, match="no embeddings of b; it has: a, c"):
        task.predict(other)
