"""Tests for mmfuse.tasks.retrieval: output packing, positives, symmetric multi-positive InfoNCE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmfuse.models.multimodal import ModelOutput
from mmfuse.tasks.retrieval import RetrievalTask, info_nce, positives, split_output


def pack(za: torch.Tensor, zb: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """(B, 2 * D + 1) as RetrievalModel.forward packs it."""
    scale = torch.as_tensor(scale, dtype=za.dtype)
    return torch.cat([za, zb, scale.expand(za.shape[0], 1)], dim=1)


def distinct(b: int) -> torch.Tensor:
    """Item ids where every row is its own image and its own caption."""
    return torch.arange(b).repeat(2, 1).T.contiguous()


def random_unit(b: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(b, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_split_output_unpacks_both_sides_and_the_scale() -> None:
    za, zb = torch.arange(6.0).view(2, 3), -torch.arange(6.0).view(2, 3)
    a, b, scale = split_output(pack(za, zb, 7.0))
    assert torch.equal(a, za)
    assert torch.equal(b, zb)
    assert scale.shape == ()
    assert scale.item() == 7.0


def test_info_nce_2x2_matches_hand_computation() -> None:
    # sim = 2 * za @ zb.T = [[1.2, 0.0], [1.6, 2.0]]
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zb = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    a_to_b = [math.log(1 + math.exp(-1.2)), math.log(1 + math.exp(-0.4))]  # rows of sim
    b_to_a = [math.log(1 + math.exp(0.4)), math.log(1 + math.exp(-2.0))]  # rows of sim.T
    expected = (sum(a_to_b) / 2 + sum(b_to_a) / 2) / 2
    loss = info_nce(pack(za, zb, 2.0), distinct(2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_of_uniform_similarities_is_log_batch_size() -> None:
    z = torch.zeros(4, 3)
    z[:, 0] = 1.0  # every pair has cosine 1: no row can be told apart
    assert info_nce(pack(z, z, 10.0), distinct(4)).item() == pytest.approx(math.log(4), rel=1e-6)


def test_perfectly_aligned_embeddings_with_a_large_scale_give_loss_near_zero() -> None:
    z = torch.eye(5)
    assert info_nce(pack(z, z, 100.0), distinct(5)).item() < 1e-6
    assert info_nce(pack(z, z, 1.0), distinct(5)).item() > 0.5  # the scale is what sharpens it


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
    logits = pack(za, zb, 10.0)
    shared = info_nce(logits, torch.tensor([[0, 0], [0, 1], [1, 2]]))
    as_negatives = info_nce(logits, distinct(3))
    # both captions match their image: nothing left to learn once they count as positives,
    # while as negatives the image must tell its own caption from its twin (about log 2 per row)
    assert shared.item() < 1e-3
    assert as_negatives.item() > 0.3


def test_info_nce_is_symmetric_in_the_two_sides() -> None:
    za, zb = random_unit(6, 4, 0), random_unit(6, 4, 1)
    items = torch.tensor([[0, 0], [0, 1], [1, 2], [2, 3], [3, 3], [4, 4]])
    forward = info_nce(pack(za, zb, 3.0), items)
    swapped = info_nce(pack(zb, za, 3.0), items.flip(1))
    assert swapped.item() == pytest.approx(forward.item(), rel=1e-6)
    assert forward.item() > 0


def test_gradients_reach_both_sides_and_the_scale() -> None:
    za = random_unit(4, 3, 2).requires_grad_()
    zb = random_unit(4, 3, 3).requires_grad_()
    scale = torch.tensor(5.0, requires_grad=True)
    info_nce(torch.cat([za, zb, scale.expand(4, 1)], 1), distinct(4)).backward()
    for grad in (za.grad, zb.grad, scale.grad):
        assert grad is not None
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0


def test_task_loss_eval_loss_and_predict() -> None:
    task = RetrievalTask()
    za, zb = random_unit(3, 4, 4), random_unit(3, 4, 5)
    logits = pack(za, zb, 4.0)
    items = distinct(3)
    out = task.loss(ModelOutput(logits, None, {}), items)
    assert set(out) == {"loss"}
    assert out["loss"].item() == pytest.approx(info_nce(logits, items).item())
    assert task.eval_loss(logits, items).item() == pytest.approx(out["loss"].item())
    assert torch.equal(task.predict(logits.double()), logits)
    assert task.predict(logits.double()).dtype == torch.float32


def test_eval_loss_averages_batches_of_256() -> None:
    za, zb = random_unit(300, 4, 6), random_unit(300, 4, 7)
    logits, items = pack(za, zb, 2.0), distinct(300)
    expected = (info_nce(logits[:256], items[:256]) + info_nce(logits[256:], items[256:])) / 2
    assert RetrievalTask().eval_loss(logits, items).item() == pytest.approx(
        expected.item(), rel=1e-6
    )
