"""Known values of bilinear, film, moe, graph and early_transformer on tiny hand-made inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from mmfuse.fusion import create_fusion, fusion_level
from mmfuse.fusion.bilinear import factorized_bilinear_pool, power_l2_normalize
from mmfuse.fusion.early_transformer import chunk_tokens, num_tokens

T, F_ = True, False
NAMES = ("bilinear", "film", "moe", "graph", "early_transformer")


def mask_of(**rows: list[bool]) -> dict[str, Tensor]:
    return {m: torch.tensor(v) for m, v in rows.items()}


def test_levels() -> None:
    assert [fusion_level(n) for n in NAMES] == ["feature"] * 4 + ["early"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_modalities", [1, 6])
def test_one_to_six_modalities(name: str, num_modalities: int) -> None:
    torch.manual_seed(0)
    dims = {f"m{i}": 20 + 7 * i for i in range(num_modalities)}
    fusion = create_fusion(name, dims, dim=16)
    x = {m: torch.randn(5, d) for m, d in dims.items()}
    rows = torch.rand(5, num_modalities) > 0.5
    rows[0], rows[1] = True, False  # one sample with all present, one with none
    out = fusion(x, {m: rows[:, i] for i, m in enumerate(sorted(dims))})
    assert out.shape == (5, 16) and torch.isfinite(out).all()


# --- bilinear ------------------------------------------------------------------------------


def test_bilinear_pool_two_modalities_matches_manual_formula() -> None:
    za = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    zb = torch.tensor([[2.0, -1.0, 0.5, 1.0, 3.0, -2.0]])
    z = torch.stack([za, zb], 1)  # (1, 2, k*o) with k = 3, o = 2
    pooled = factorized_bilinear_pool(z, torch.tensor([[T, T]]), factor=3)
    # groups of 3 consecutive products: (2 - 2 + 1.5), (4 + 15 - 12)
    torch.testing.assert_close(pooled, torch.tensor([[1.5, 7.0]]))
    only_a = factorized_bilinear_pool(z, torch.tensor([[T, F_]]), factor=3)
    torch.testing.assert_close(only_a, torch.tensor([[6.0, 15.0]]))
    none = factorized_bilinear_pool(z, torch.tensor([[F_, F_]]), factor=3)
    torch.testing.assert_close(none, torch.zeros(1, 2))


def test_power_l2_normalize() -> None:
    out = power_l2_normalize(torch.tensor([[9.0, -16.0], [0.0, 0.0]]), eps=0.0)
    torch.testing.assert_close(out, torch.tensor([[0.6, -0.8], [0.0, 0.0]]))
    x = torch.zeros(1, 3, requires_grad=True)
    power_l2_normalize(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def hand_set_bilinear() -> torch.nn.Module:
    fusion = create_fusion("bilinear", {"a": 2, "b": 2}, dim=2, factor=2).eval()
    with torch.no_grad():
        fusion.proj["a"].weight.copy_(torch.tensor([[1.0, 0], [0, 1], [1, 1], [2, 0]]))
        fusion.proj["b"].weight.copy_(torch.tensor([[0.0, 1], [1, 0], [1, -1], [0, 3]]))
        fusion.proj["a"].bias.zero_()
        fusion.proj["b"].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    return fusion


def test_bilinear_hand_set_projections() -> None:
    fusion = hand_set_bilinear()
    assert fusion.output_dim == 2
    x = {"a": torch.tensor([[1.0, 2.0]] * 3), "b": torch.tensor([[3.0, -1.0]] * 3)}
    mask = mask_of(a=[T, T, F_], b=[T, F_, F_])
    # za = [1, 2, 3, 2], zb = [0, 3, 4, -3] -> products [0, 6, 12, -6] -> pooled [6, 6]
    expected_pooled = torch.tensor([[6.0, 6.0], [3.0, 5.0], [0.0, 0.0]])
    torch.testing.assert_close(fusion.pooled(x, mask), expected_pooled)
    expected = power_l2_normalize(expected_pooled, fusion.eps)
    torch.testing.assert_close(fusion(x, mask), expected)
    torch.testing.assert_close(fusion(x, mask)[0], torch.tensor([0.5, 0.5]) ** 0.5)


# --- film ----------------------------------------------------------------------------------


def test_film_zero_init_is_masked_mean_of_relu_projections() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = create_fusion("film", dims, dim=6)
    x = {m: torch.randn(3, d) for m, d in dims.items()}
    mask = mask_of(a=[T, T, F_], b=[T, F_, F_], c=[T, T, F_])
    h = {m: torch.relu(fusion.proj[m](x[m])) for m in dims}
    expected = torch.stack(
        [(h["a"][0] + h["b"][0] + h["c"][0]) / 3, (h["a"][1] + h["c"][1]) / 2, torch.zeros(6)]
    )
    torch.testing.assert_close(fusion(x, mask), expected)


def film_with_generators(condition: str | None) -> torch.nn.Module:
    torch.manual_seed(1)
    fusion = create_fusion("film", {"a": 2, "b": 3, "c": 2}, dim=4, condition=condition)
    with torch.no_grad():
        for layer in fusion.film.values():
            layer.weight.normal_()
            layer.bias.normal_()
    return fusion


def film_reference(fusion: torch.nn.Module, x: dict[str, Tensor], target: str, ctx: Tensor):
    gamma, beta = fusion.film[target](ctx).chunk(2, dim=-1)
    return (1 + gamma) * fusion.proj[target](x[target]) + beta


def test_film_all_to_all_context_is_mean_of_other_present() -> None:
    fusion = film_with_generators(None)
    torch.manual_seed(2)
    x = {"a": torch.randn(2, 2), "b": torch.randn(2, 3), "c": torch.randn(2, 2)}
    h = {m: fusion.proj[m](t) for m, t in x.items()}
    out = fusion(x, mask_of(a=[T, T], b=[T, F_], c=[T, F_]))
    # sample 0: all present; sample 1: only a, which is left unmodulated
    expected0 = (
        torch.relu(film_reference(fusion, x, "a", (h["b"] + h["c"]) / 2))
        + torch.relu(film_reference(fusion, x, "b", (h["a"] + h["c"]) / 2))
        + torch.relu(film_reference(fusion, x, "c", (h["a"] + h["b"]) / 2))
    ) / 3
    torch.testing.assert_close(out[0], expected0[0])
    torch.testing.assert_close(out[1], torch.relu(h["a"][1]))


def test_film_with_condition_modality() -> None:
    fusion = film_with_generators("b")
    assert sorted(fusion.film) == ["a", "c"]
    torch.manual_seed(2)
    x = {"a": torch.randn(2, 2), "b": torch.randn(2, 3), "c": torch.randn(2, 2)}
    h = {m: fusion.proj[m](t) for m, t in x.items()}
    out = fusion(x, mask_of(a=[T, T], b=[T, F_], c=[T, T]))
    expected0 = (
        torch.relu(film_reference(fusion, x, "a", h["b"]))
        + torch.relu(h["b"])
        + torch.relu(film_reference(fusion, x, "c", h["b"]))
    ) / 3
    torch.testing.assert_close(out[0], expected0[0])
    # the conditioning modality is missing: a and c pass through unmodulated
    torch.testing.assert_close(out[1], (torch.relu(h["a"][1]) + torch.relu(h["c"][1])) / 2)


def test_film_rejects_unknown_condition() -> None:
    with pytest.raises(ValueError, match="choose one of: a, b"):
        create_fusion("film", {"a": 2, "b": 2}, condition="z")


# --- moe -----------------------------------------------------------------------------------


def test_moe_gate_sums_to_one_over_present_and_mixes_experts() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = create_fusion("moe", dims, dim=5)
    x = {m: torch.randn(4, d) for m, d in dims.items()}
    mask = mask_of(a=[T, T, F_, F_], b=[T, F_, T, F_], c=[T, T, F_, F_])
    out = fusion(x, mask)
    gate = fusion.last_gate
    present = torch.stack([mask[m] for m in sorted(dims)], 1)
    assert gate.shape == (4, 3) and not gate.requires_grad
    assert (gate[~present] == 0).all()
    torch.testing.assert_close(gate.sum(-1), torch.tensor([1.0, 1.0, 1.0, 0.0]))
    assert len(set(gate[0].tolist())) == 3  # input-dependent, not uniform
    experts = torch.stack([fusion.experts[m](x[m]) for m in sorted(dims)], 1)
    torch.testing.assert_close(out[:3], (gate.unsqueeze(-1) * experts).sum(1)[:3])
    torch.testing.assert_close(out[2], experts[2, 1])  # only b present: its expert alone
    assert (out[3] == 0).all()


def test_moe_gate_depends_on_the_sample() -> None:
    torch.manual_seed(0)
    fusion = create_fusion("moe", {"a": 3, "b": 3}, dim=4)
    fusion({"a": torch.randn(2, 3) * 3, "b": torch.randn(2, 3) * 3}, mask_of(a=[T, T], b=[T, T]))
    assert not torch.allclose(fusion.last_gate[0], fusion.last_gate[1])


# --- graph ---------------------------------------------------------------------------------


def test_graph_single_present_modality_gets_zero_messages() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = create_fusion("graph", dims, dim=6, num_rounds=2).eval()
    x = {m: torch.randn(2, d) for m, d in dims.items()}
    out = fusion(x, mask_of(a=[F_, F_], b=[T, F_], c=[F_, F_]))
    h = fusion.proj["b"](x["b"][:1]) + fusion.type_embedding[1]
    for r in fusion.rounds:
        update = r.update(torch.cat([h, torch.zeros_like(h)], dim=-1))
        h = F.layer_norm(h + F.gelu(update), (6,), r.norm.weight, r.norm.bias)
    torch.testing.assert_close(out[:1], h)
    assert (out[1] == 0).all()
    assert (fusion.last_edges == 0).all()


def test_graph_edge_weights_normalised_over_present_neighbours() -> None:
    torch.manual_seed(0)
    dims = {"a": 3, "b": 4, "c": 2}
    fusion = create_fusion("graph", dims, dim=6)
    x = {m: torch.randn(2, d) for m, d in dims.items()}
    fusion(x, mask_of(a=[T, T], b=[T, F_], c=[T, T]))
    edges = fusion.last_edges  # (B, M, M)
    assert (edges.diagonal(dim1=1, dim2=2) == 0).all()
    torch.testing.assert_close(edges[0].sum(-1), torch.ones(3))
    torch.testing.assert_close(edges[1].sum(-1), torch.tensor([1.0, 0.0, 1.0]))
    assert (edges[1, :, 1] == 0).all()  # the missing b sends nothing


# --- early_transformer ---------------------------------------------------------------------


def test_chunk_tokens_pads_the_last_chunk() -> None:
    x = torch.arange(1.0, 21.0).unsqueeze(0)  # (1, 20)
    chunks = chunk_tokens(x, token_size=16, max_tokens=32)
    assert chunks.shape == (1, 2, 16)
    torch.testing.assert_close(chunks[0, 0], torch.arange(1.0, 17.0))
    torch.testing.assert_close(chunks[0, 1], torch.cat([torch.arange(17.0, 21.0), torch.zeros(12)]))


def test_chunk_tokens_pools_long_vectors() -> None:
    assert num_tokens(1000, 16, 32) == 32 and num_tokens(16, 16, 32) == 1
    x = torch.arange(8.0).repeat_interleave(2).unsqueeze(0)  # (1, 16): 0,0,1,1,...
    chunks = chunk_tokens(x, token_size=2, max_tokens=4)  # pooled to 8 values, 4 tokens
    torch.testing.assert_close(chunks, torch.arange(8.0).view(1, 4, 2))


def test_early_transformer_token_counts_and_shape() -> None:
    fusion = create_fusion("early_transformer", {"image": 192, "text": 20, "audio": 4000})
    assert fusion.tokens_per_modality == {"audio": 32, "image": 12, "text": 2}
    assert fusion.position["image"].shape == (12, 128)
    x = {"image": torch.randn(2, 192), "text": torch.randn(2, 20), "audio": torch.randn(2, 4000)}
    out = fusion(x, mask_of(image=[T, F_], text=[T, F_], audio=[F_, F_]))
    assert out.shape == (2, 128) and torch.isfinite(out).all()


@pytest.mark.parametrize("training", [True, False])
def test_early_transformer_missing_inputs_never_matter(training: bool) -> None:
    torch.manual_seed(0)
    dims = {"a": 20, "b": 40}
    fusion = create_fusion("early_transformer", dims, dim=16).train(training)
    x = {m: torch.randn(3, d) for m, d in dims.items()}
    mask = mask_of(a=[T, F_, F_], b=[T, T, F_])
    poisoned = {"a": torch.where(mask["a"].unsqueeze(1), x["a"], float("nan")), "b": x["b"]}
    torch.manual_seed(1)
    out = fusion(x, mask)
    torch.manual_seed(1)
    torch.testing.assert_close(fusion(poisoned, mask), out, rtol=0, atol=0)
    assert torch.isfinite(out).all()
    with torch.no_grad():  # the inference fast path too
        torch.manual_seed(1)
        fast = fusion(poisoned, mask)
    assert torch.isfinite(fast).all()
    if not training:
        torch.testing.assert_close(fast, out, rtol=1e-5, atol=1e-5)
