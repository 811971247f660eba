"""Tests for mmfuse.data.row_buffer.RowBuffer: batches written into tensors allocated once."""

from __future__ import annotations

import pytest
import torch

from mmfuse.data.row_buffer import RowBuffer


def test_batches_fill_each_named_tensor_in_row_order() -> None:
    buffer = RowBuffer(5)
    buffer.add("p", torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    buffer.add("m", torch.tensor([True, False, True]))
    buffer.add("p", torch.tensor([[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]))
    buffer.add("m", torch.tensor([False, True]))
    assert torch.equal(buffer.get("p"), torch.arange(1.0, 11.0).reshape(5, 2))
    assert torch.equal(buffer.get("m"), torch.tensor([True, False, True, False, True]))
    assert "p" in buffer and "q" not in buffer


def test_a_tensor_keeps_its_first_batch_dtype_and_refuses_too_many_or_too_few_rows() -> None:
    buffer = RowBuffer(2)
    buffer.add("x", torch.tensor([1], dtype=torch.int64))
    with pytest.raises(ValueError, match="'x': 1 of 2 rows added"):
        buffer.get("x")
    with pytest.raises(ValueError, match="'x': 3 rows added to a buffer of 2"):
        buffer.add("x", torch.tensor([2, 3]))
    buffer.add("x", torch.tensor([2.7]))  # written into the int64 tensor, as assignment does
    assert buffer.get("x").tolist() == [1, 2]
