"""Known values of each fusion operator on tiny hand-made inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from mmfuse.fusion import create_fusion, fusion_level

T, F = True, False


def mask_of(**rows: list[bool]) -> dict[str, Tensor]:
    return {m: torch.tensor(v) for m, v in rows.items()}


def test_levels() -> None:
    assert [fusion_level(n) for n in ("concat", "weighted_sum", "attention")] == ["feature"] * 3
    assert fusion_level("early_concat") == "early"
    assert fusion_level("mean") == "late"


# --- concat -------------------------------------------------------------------------------


def test_concat_sorted_order_and_missing_zeros() -> None:
    fusion = create_fusion("concat", {"text": 1, "image": 2})
    assert fusion.output_dim == 3
    emb = {"text": torch.tensor([[5.0], [6.0]]), "image": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    out = fusion(emb, mask_of(text=[T, F], image=[F, T]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 5.0], [3.0, 4.0, 0.0]]))


# --- weighted_sum ---------------------------------------------------------------------------


def identity_weighted_sum() -> torch.nn.Module:
    fusion = create_fusion("weighted_sum", {"a": 2, "b": 2, "c": 2}, dim=2)
    with torch.no_grad():
        for proj in fusion.proj.values():
            proj.weight.copy_(torch.eye(2))
            proj.bias.zero_()
    return fusion


def test_weighted_sum_zero_logits_is_mean_of_present() -> None:
    fusion = identity_weighted_sum()
    emb = {
        "a": torch.tensor([[1.0, 2.0]] * 3),
        "b": torch.tensor([[3.0, 6.0]] * 3),
        "c": torch.tensor([[8.0, -1.0]] * 3),
    }
    out = fusion(emb, mask_of(a=[T, T, F], b=[T, F, F], c=[T, T, F]))
    expected = torch.tensor([[4.0, 7 / 3], [4.5, 0.5], [0.0, 0.0]])
    torch.testing.assert_close(out, expected)


def test_weighted_sum_learned_weights() -> None:
    fusion = identity_weighted_sum()
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([0.0, math.log(3.0), 5.0]))
    emb = {"a": torch.tensor([[4.0, 0.0]]), "b": torch.tensor([[0.0, 4.0]]), "c": torch.ones(1, 2)}
    out = fusion(emb, mask_of(a=[T], b=[T], c=[F]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 3.0]]))  # weights 1/4, 3/4


# --- attention -----------------------------------------------------------------------------


def direct_attention(fusion: torch.nn.Module, emb: dict[str, Tensor], mask: dict[str, Tensor]):
    """Single-head reference: softmax(QK^T / sqrt(d_k)) V written out with the module's weights."""
    mods = sorted(emb)
    tokens = torch.stack(
        [emb[m] @ fusion.proj[m].weight.T + fusion.proj[m].bias for m in mods], 1
    ) + fusion.type_embedding  # (B, M, d)
    q = tokens @ fusion.query.weight.T + fusion.query.bias
    k = tokens @ fusion.key.weight.T + fusion.key.bias
    v = tokens @ fusion.value.weight.T + fusion.value.bias
    present = torch.stack([mask[m] for m in mods], 1)  # (B, M)
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~present[:, None, :], float("-inf"))
    attn = torch.softmax(scores, dim=-1)  # (B, M, M)
    h = torch.nn.functional.layer_norm(
        tokens + (attn @ v) @ fusion.out.weight.T + fusion.out.bias,
        (q.shape[-1],), fusion.norm.weight, fusion.norm.bias,
    )
    w = present.float().unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1), attn * present[:, :, None]


def test_attention_matches_direct_single_head_computation() -> None:
    torch.manual_seed(0)
    dims = {"b": 4, "a": 3, "c": 2}
    fusion = create_fusion("attention", dims, dim=8, num_heads=1).eval()
    emb = {m: torch.randn(3, d) for m, d in dims.items()}
    mask = mask_of(a=[T, T, F], b=[T, F, T], c=[T, T, F])
    expected, expected_attn = direct_attention(fusion, emb, mask)
    torch.testing.assert_close(fusion(emb, mask), expected)
    assert fusion.last_attention.shape == (3, 1, 3, 3)
    torch.testing.assert_close(fusion.last_attention[:, 0], expected_attn)


def test_attention_multi_head_shapes_and_all_missing() -> None:
    fusion = create_fusion("attention", {"a": 3, "b": 5})
    assert fusion.output_dim == 128
    emb = {"a": torch.randn(2, 3), "b": torch.randn(2, 5)}
    out = fusion(emb, mask_of(a=[T, F], b=[T, F]))
    assert fusion.last_attention.shape == (2, 4, 2, 2)
    torch.testing.assert_close(fusion.last_attention[0].sum(-1), torch.ones(4, 2))
    assert (fusion.last_attention[1] == 0).all()
    assert (out[1] == 0).all() and torch.isfinite(out).all()


def test_attention_rejects_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="divisible"):
        create_fusion("attention", {"a": 3}, dim=10, num_heads=4)


# --- early_concat --------------------------------------------------------------------------


def test_early_concat_shape_and_presence_features() -> None:
    fusion = create_fusion("early_concat", {"image": 192, "text": 20, "audio": 80}, dim=16)
    assert fusion.output_dim == 16
    assert fusion.mlp[0].in_features == 192 + 20 + 80 + 3
    emb = {"image": torch.randn(2, 192), "text": torch.zeros(2, 20), "audio": torch.randn(2, 80)}
    emb["image"][1] = emb["image"][0]
    emb["audio"][1] = emb["audio"][0]
    out = fusion.eval()(emb, mask_of(image=[T, T], text=[T, F], audio=[T, T]))
    assert out.shape == (2, 16)
    # a zero text vector and a missing text differ only through the presence flags
    assert not torch.allclose(out[0], out[1])


# --- mean ----------------------------------------------------------------------------------


def logits_of(*probs: float) -> Tensor:
    return torch.tensor([probs]).log()


def test_mean_classification_probabilities() -> None:
    fusion = create_fusion("mean", {"a": 2, "b": 2, "c": 2})
    assert fusion.output_dim == 2 and sum(p.numel() for p in fusion.parameters()) == 0
    outputs = {
        "a": torch.cat([logits_of(0.2, 0.8), logits_of(0.2, 0.8)]),
        "b": torch.cat([logits_of(0.6, 0.4), logits_of(0.6, 0.4)]),
        "c": torch.cat([logits_of(0.9, 0.1), logits_of(0.9, 0.1)]),
    }
    out = fusion(outputs, mask_of(a=[T, F], b=[T, F], c=[F, F]))
    torch.testing.assert_close(out.softmax(-1), torch.tensor([[0.4, 0.6], [0.5, 0.5]]))
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))  # log of the mean probability


def test_mean_regression() -> None:
    fusion = create_fusion("mean", {"a": 1, "b": 1}, task="regression")
    out = fusion(
        {"a": torch.tensor([[1.0], [2.0], [3.0]]), "b": torch.tensor([[3.0], [5.0], [7.0]])},
        mask_of(a=[T, F, F], b=[T, T, F]),
    )
    torch.testing.assert_close(out, torch.tensor([[2.0], [5.0], [0.0]]))


def test_mean_validates_arguments() -> None:
    with pytest.raises(ValueError, match="equal output sizes"):
        create_fusion("mean", {"a": 2, "b": 3})
    with pytest.raises(ValueError, match="classification, regression"):
        create_fusion("mean", {"a": 2}, task="ranking")
