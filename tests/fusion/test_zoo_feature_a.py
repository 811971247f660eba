"""Known values of gated, cross_attention, transformer, tensor and low_rank_tensor fusion."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from mmfuse.fusion import create_fusion
from mmfuse.fusion.tensor import outer_product

T, F = True, False
NAMES = ("gated", "cross_attention", "transformer", "tensor", "low_rank_tensor")


def mask_of(**rows: list[bool]) -> dict[str, Tensor]:
    return {m: torch.tensor(v) for m, v in rows.items()}


# --- gated ---------------------------------------------------------------------------------


def test_gated_matches_manual_formula() -> None:
    fusion = create_fusion("gated", {"b": 1, "a": 2}, dim=2)
    with torch.no_grad():
        fusion.proj["a"].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        fusion.proj["a"].bias.zero_()
        fusion.proj["b"].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        fusion.proj["b"].bias.copy_(torch.tensor([0.5, 0.0]))
        # gate input [a_0, a_1, b_0] -> logits rows (a, unit 0), (a, unit 1), (b, 0), (b, 1)
        fusion.gate.weight.copy_(
            torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
        )
        fusion.gate.bias.zero_()
    a, b = torch.tensor([[0.3, -0.4]]), torch.tensor([[0.8]])
    h_a = torch.tanh(torch.tensor([0.3, -0.8]))
    h_b = torch.tanh(torch.tensor([0.8 + 0.5, -0.8]))
    z = torch.sigmoid(torch.tensor([0.3, -0.4]) - torch.tensor([0.8, -0.8]))  # 2-modality gate
    expected = z * h_a + (1 - z) * h_b
    torch.testing.assert_close(fusion({"a": a, "b": b}, mask_of(a=[T], b=[T]))[0], expected)
    torch.testing.assert_close(fusion.last_gate[0, 0], z)
    # only b present: its gate is 1 whatever the logits, and a's NaN never leaks
    out = fusion({"a": torch.full((1, 2), float("nan")), "b": b}, mask_of(a=[F], b=[T]))
    torch.testing.assert_close(out[0], h_b)


def test_gated_gates_sum_to_one_over_present() -> None:
    fusion = create_fusion("gated", {"a": 3, "b": 4, "c": 5}, dim=6)
    emb = {m: torch.randn(3, d) for m, d in {"a": 3, "b": 4, "c": 5}.items()}
    out = fusion(emb, mask_of(a=[T, T, F], b=[T, F, F], c=[T, T, F]))
    torch.testing.assert_close(fusion.last_gate[:2].sum(1), torch.ones(2, 6))
    assert (fusion.last_gate[1, 1] == 0).all() and (fusion.last_gate[2] == 0).all()
    assert (out[2] == 0).all()


# --- cross_attention -----------------------------------------------------------------------


def test_cross_attention_rows_sum_to_one_over_other_present_keys() -> None:
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = create_fusion("cross_attention", dims, dim=8, num_heads=2).eval()
    emb = {m: torch.randn(4, d) for m, d in dims.items()}
    mask = mask_of(a=[T, T, F, F], b=[T, F, T, F], c=[T, T, F, F])
    out = fusion(emb, mask)
    attn = fusion.last_attention  # (B, H, M, M)
    assert attn.shape == (4, 2, 3, 3) and torch.isfinite(out).all()
    assert (attn.diagonal(dim1=-2, dim2=-1) == 0).all()  # never attends to itself
    torch.testing.assert_close(attn[0].sum(-1), torch.ones(2, 3))
    # sample 1: a and c present, each attends only to the other; b (missing) row/column zero
    torch.testing.assert_close(attn[1, :, 0, 2], torch.ones(2))
    torch.testing.assert_close(attn[1, :, 2, 0], torch.ones(2))
    assert (attn[1, :, 1] == 0).all() and (attn[1, :, :, 1] == 0).all()
    assert (attn[2] == 0).all() and (attn[3] == 0).all()  # one or no modality: no attention
    assert (out[3] == 0).all()


def test_cross_attention_single_modality_keeps_own_token() -> None:
    fusion = create_fusion("cross_attention", {"a": 5}, dim=8).eval()
    x = torch.randn(3, 5)
    out = fusion({"a": x}, mask_of(a=[T, T, F]))
    assert out.shape == (3, 8) and torch.isfinite(out).all()
    h = fusion.proj["a"](x[:2])  # no other modality: only the feed-forward sublayer applies
    expected = fusion.norm_feed_forward(h + fusion.feed_forward(h))
    torch.testing.assert_close(out[:2], expected)
    assert (out[2] == 0).all()


# --- transformer ---------------------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True])
def test_transformer_missing_modality_has_no_effect_train_and_eval(train: bool) -> None:
    dims = {"a": 3, "b": 4, "c": 2}
    torch.manual_seed(0)
    fusion = create_fusion("transformer", dims, dim=16).train(train)
    emb = {m: torch.randn(4, d) for m, d in dims.items()}
    mask = mask_of(a=[T, F, T, F], b=[T, T, F, F], c=[F, T, T, F])
    poisoned = {m: torch.where(mask[m].unsqueeze(1), t, float("nan")) for m, t in emb.items()}
    for grad in (True, False):  # no_grad in eval mode takes the encoder's fast path
        with torch.set_grad_enabled(grad):
            torch.manual_seed(1)
            out = fusion(emb, mask)
            torch.manual_seed(1)
            out_poisoned = fusion(poisoned, mask)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out_poisoned, out, rtol=0, atol=0)
    assert not torch.allclose(out[0], out[3])  # present modalities do change the CLS state


def test_transformer_eval_fast_path_matches_slow_path() -> None:
    dims = {"a": 3, "b": 4}
    fusion = create_fusion("transformer", dims, dim=16).eval()
    emb = {m: torch.randn(3, d) for m, d in dims.items()}
    mask = mask_of(a=[T, F, F], b=[T, T, F])
    slow = fusion(emb, mask)
    with torch.no_grad():
        fast = fusion(emb, mask)
    torch.testing.assert_close(fast, slow)
    # a sample with nothing present is the CLS state alone, whatever the inputs
    other = {m: torch.randn(3, d) for m, d in dims.items()}
    torch.testing.assert_close(fusion(other, mask)[2], slow[2], rtol=0, atol=0)


# --- tensor --------------------------------------------------------------------------------


def test_outer_product_of_augmented_vectors_has_all_interaction_terms() -> None:
    a, b = torch.tensor([[2.0, 3.0]]), torch.tensor([[5.0, 7.0, 11.0]])
    one = torch.ones(1, 1)
    flat = outer_product([torch.cat([a, one], 1), torch.cat([b, one], 1)])
    expected = torch.tensor(
        [[10.0, 14.0, 22.0, 2.0, 15.0, 21.0, 33.0, 3.0, 5.0, 7.0, 11.0, 1.0]]
    )  # a_i b_j, a_i | ... | b_j, 1  (row-major, a slowest)
    torch.testing.assert_close(flat, expected)
    three = outer_product([torch.tensor([[2.0, 1.0]]), torch.tensor([[3.0, 1.0]]), a])
    torch.testing.assert_close(three, torch.tensor([[12.0, 18.0, 4.0, 6.0, 6.0, 9.0, 2.0, 3.0]]))


def test_tensor_fusion_missing_modality_uses_zeros_and_one() -> None:
    fusion = create_fusion("tensor", {"a": 2, "b": 3}, dim=4, rank_dim=2)
    assert fusion.mlp[0].in_features == 3 * 3 and fusion.output_dim == 4
    emb = {"a": torch.randn(2, 2), "b": torch.randn(2, 3)}
    out = fusion(emb, mask_of(a=[T, T], b=[T, F]))
    z_a = torch.cat([fusion.proj["a"](emb["a"][1:]), torch.ones(1, 1)], 1)
    z_b = torch.tensor([[0.0, 0.0, 1.0]])
    torch.testing.assert_close(out[1:], fusion.mlp(outer_product([z_a, z_b])))


def test_tensor_fusion_default_rank_dim() -> None:
    assert create_fusion("tensor", {"a": 2, "b": 2, "c": 2}).mlp[0].in_features == 9**3
    four = create_fusion("tensor", {m: 2 for m in "abcd"})
    assert four.rank_dim == 4 and four.mlp[0].in_features == 5**4


# --- low_rank_tensor -----------------------------------------------------------------------


def test_low_rank_tensor_matches_manual_factor_computation() -> None:
    fusion = create_fusion("low_rank_tensor", {"b": 3, "a": 2}, dim=4, rank=3)
    emb = {"a": torch.randn(2, 2), "b": torch.randn(2, 3)}
    out = fusion(emb, mask_of(a=[T, T], b=[T, F]))
    w, bias = fusion.fusion_weights, fusion.bias
    w_a, w_b = fusion.factors["a"], fusion.factors["b"]  # (r, D + 1, dim)
    z_bs = [torch.cat([emb["b"][0], torch.ones(1)]), torch.tensor([0.0, 0.0, 0.0, 1.0])]
    for s, z_b in enumerate(z_bs):
        z_a = torch.cat([emb["a"][s], torch.ones(1)])
        expected = bias + sum(w[i] * (z_a @ w_a[i]) * (z_b @ w_b[i]) for i in range(3))
        torch.testing.assert_close(out[s], expected)


def test_low_rank_tensor_equals_full_tensor_with_rank_r_weight() -> None:
    fusion = create_fusion("low_rank_tensor", {"a": 2, "b": 3}, dim=4, rank=2)
    emb = {"a": torch.randn(5, 2), "b": torch.randn(5, 3)}
    out = fusion(emb, mask_of(a=[T] * 5, b=[T] * 5))
    weight = torch.einsum(
        "r,rik,rjk->ijk", fusion.fusion_weights, fusion.factors["a"], fusion.factors["b"]
    )  # (3, 4, dim): full tensor of rank 2
    z = outer_product([torch.cat([emb[m], torch.ones(5, 1)], 1) for m in ("a", "b")])
    torch.testing.assert_close(out, z @ weight.reshape(-1, 4) + fusion.bias)


# --- all five ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_modalities", [1, 2, 4, 6])
def test_any_number_of_modalities_and_scale(name: str, num_modalities: int) -> None:
    torch.manual_seed(0)
    dims = {f"m{i}": 8 + i for i in range(num_modalities)}
    fusion = create_fusion(name, dims, dim=16).eval()
    emb = {m: torch.randn(32, d) for m, d in dims.items()}
    rows = torch.rand(32, num_modalities) < 0.6
    mask = {m: rows[:, i] for i, m in enumerate(sorted(dims))}
    out = fusion(emb, mask)
    assert out.shape == (32, 16) and torch.isfinite(out).all()
    assert out.std() < 10 * math.sqrt(num_modalities)  # O(1) outputs, not exploding with M


@pytest.mark.parametrize("name", ["cross_attention", "transformer"])
def test_rejects_indivisible_heads(name: str) -> None:
    with pytest.raises(ValueError, match="divisible"):
        create_fusion(name, {"a": 3}, dim=10, num_heads=4)
