"""Tests for mmfuse.models.multimodal.ModelOutput: logits or embeddings, moved and joined."""

from __future__ import annotations

import pytest
import torch

from mmfuse.models.multimodal import ModelOutput


def retrieval_output(rows: range, scale: float = 3.0) -> ModelOutput:
    a = torch.tensor([[float(i), 0.0] for i in rows], dtype=torch.float64)
    b = torch.tensor([[0.0, float(-i)] for i in rows], dtype=torch.float64)
    mask = {"a": torch.ones(len(rows), dtype=torch.bool)}
    return ModelOutput(None, None, mask, {"a": a, "b": b}, torch.tensor(scale).requires_grad_())


def test_cat_joins_logits_per_modality_and_masks_in_row_order() -> None:
    first = ModelOutput(
        torch.tensor([[1.0, 2.0]]), {"x": torch.tensor([[0.5, 0.5]])}, {"x": torch.tensor([True])}
    )
    second = ModelOutput(
        torch.tensor([[3.0, 4.0], [5.0, 6.0]]),
        {"x": torch.tensor([[1.0, 0.0], [1.0, 0.0]])},
        {"x": torch.tensor([False, True])},
    )
    joined = ModelOutput.cat([first, second])
    assert torch.equal(joined.logits, torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert torch.equal(joined.per_modality["x"], torch.tensor([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0]]))
    assert torch.equal(joined.mask["x"], torch.tensor([True, False, True]))
    assert joined.embeddings is None and joined.logit_scale is None


def test_cat_joins_embeddings_and_keeps_the_one_logit_scale() -> None:
    joined = ModelOutput.cat([retrieval_output(range(2)), retrieval_output(range(2, 5))])
    assert joined.logits is None and joined.per_modality is None
    assert torch.equal(joined.embeddings["a"][:, 0], torch.arange(5.0, dtype=torch.float64))
    assert torch.equal(joined.embeddings["b"][:, 1], -torch.arange(5.0, dtype=torch.float64))
    assert joined.logit_scale.item() == 3.0
    assert joined.mask["a"].shape == (5,)


def test_cat_of_no_batches_is_empty_logits() -> None:
    empty = ModelOutput.cat([])
    assert empty.logits is not None and empty.logits.numel() == 0


def test_cpu_detaches_and_makes_floats_float32_keeping_masks() -> None:
    out = retrieval_output(range(3)).cpu()
    assert out.embeddings["a"].dtype == torch.float32
    assert not out.logit_scale.requires_grad and out.logit_scale.dtype == torch.float32
    assert out.mask["a"].dtype == torch.bool
    assert out.logits is None and out.per_modality is None


def test_require_logits_returns_them_or_names_the_embeddings() -> None:
    logits = torch.zeros(2, 3)
    assert ModelOutput(logits, None, {}).require_logits() is logits
    with pytest.raises(ValueError, match=r"no logits, only embeddings of \['a', 'b'\]"):
        retrieval_output(range(2)).require_logits()


def test_cat_of_batches_as_they_come_with_their_row_count_equals_the_list_join() -> None:
    batches = [retrieval_output(range(2)), retrieval_output(range(2, 5))]
    streamed = ModelOutput.cat(iter(batches), rows=5)
    listed = ModelOutput.cat(batches)
    assert torch.equal(streamed.embeddings["a"], listed.embeddings["a"])
    assert torch.equal(streamed.mask["a"], listed.mask["a"]) and streamed.rows == 5
    with pytest.raises(ValueError, match="5 of 6 rows added"):
        ModelOutput.cat(iter(batches), rows=6)
