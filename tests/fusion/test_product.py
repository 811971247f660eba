"""The product combiner: known values, the exact posterior of independent modalities, fitting."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as fn

from mmfuse.fusion import create_fusion

T, F = True, False


def logits(*probs: list[float]) -> torch.Tensor:
    return torch.tensor(probs).log()


def test_two_opinions_multiply_over_the_prior_and_a_missing_one_adds_nothing() -> None:
    fusion = create_fusion("product", {"a": 2, "b": 2})
    outputs = {"a": logits([0.8, 0.2], [0.8, 0.2], [0.8, 0.2]), "b": logits([0.6, 0.4], [0.6, 0.4], [0.6, 0.4])}
    mask = {"a": torch.tensor([T, T, F]), "b": torch.tensor([T, F, F])}
    p = fusion(outputs, mask).softmax(-1)
    # (0.8 * 0.6 / 0.5) : (0.2 * 0.4 / 0.5) = 0.48 : 0.08
    torch.testing.assert_close(p[0], torch.tensor([0.48 / 0.56, 0.08 / 0.56]))
    torch.testing.assert_close(p[1], torch.tensor([0.8, 0.2]))  # b missing: a's own opinion
    torch.testing.assert_close(p[2], torch.tensor([0.5, 0.5]))  # nothing present: the prior


def test_weights_and_prior_enter_as_documented() -> None:
    fusion = create_fusion("product", {"a": 3, "b": 3})
    fusion.weights.copy_(torch.tensor([0.5, 2.0]))
    fusion.log_prior.copy_(torch.tensor([0.5, 0.3, 0.2]).log())
    z = {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}
    mask = {"a": torch.tensor([T, T, F, F]), "b": torch.tensor([T, F, T, F])}
    b = fusion.log_prior
    ev = {m: z[m].log_softmax(-1) - b for m in z}
    expected = b + 0.5 * ev["a"] * mask["a"].float()[:, None] + 2.0 * ev["b"] * mask["b"].float()[:, None]
    torch.testing.assert_close(fusion(z, mask), expected)
    torch.testing.assert_close(fusion(z, mask)[3].softmax(-1), torch.tensor([0.5, 0.3, 0.2]))


def test_it_is_the_exact_posterior_of_modalities_independent_given_the_class() -> None:
    """Two binary signals, independent given a class with prior (0.7, 0.3): fed each signal's
    exact posterior, the unfitted product (with the true prior) gives the exact joint posterior
    for all four combinations, where the mean of the two posteriors does not."""
    prior = torch.tensor([0.7, 0.3])
    like = {"a": torch.tensor([[0.9, 0.1], [0.2, 0.8]]), "b": torch.tensor([[0.6, 0.4], [0.3, 0.7]])}  # [class, signal]
    xs = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    post = {m: prior * like[m][:, xs[:, i]].T for i, m in enumerate("ab")}
    post = {m: p / p.sum(1, keepdim=True) for m, p in post.items()}
    joint = prior * like["a"][:, xs[:, 0]].T * like["b"][:, xs[:, 1]].T
    joint = joint / joint.sum(1, keepdim=True)
    fusion = create_fusion("product", {"a": 2, "b": 2})
    fusion.log_prior.copy_(prior.log())
    mask = {m: torch.ones(4, dtype=torch.bool) for m in "ab"}
    torch.testing.assert_close(fusion({m: p.log() for m, p in post.items()}, mask).softmax(-1), joint)
    mean = create_fusion("mean", {"a": 2, "b": 2})({m: p.log() for m, p in post.items()}, mask).softmax(-1)
    assert (mean - joint).abs().max() > 0.05


def test_fitting_tempers_an_overconfident_modality_and_lowers_the_loss() -> None:
    g = torch.Generator().manual_seed(0)
    n = 2000
    y = (torch.rand(n, generator=g) < 0.25).long()  # class 1 is rare
    signal = 2.0 * y.float() - 1.0
    # a: a fair opinion; b: the same kind of evidence, five times overconfident
    a = torch.stack([-signal - torch.randn(n, generator=g), torch.zeros(n)], 1)
    b = 5.0 * torch.stack([-signal - 2.0 * torch.randn(n, generator=g), torch.zeros(n)], 1)
    mask = {"a": torch.rand(n, generator=g) > 0.2, "b": torch.rand(n, generator=g) > 0.2}
    fusion = create_fusion("product", {"a": 2, "b": 2})
    before = fn.cross_entropy(fusion({"a": a, "b": b}, mask), y).item()
    fusion.fit_combiner({"a": a, "b": b}, mask, y)
    after = fn.cross_entropy(fusion({"a": a, "b": b}, mask), y).item()
    assert after < before - 0.1
    assert fusion.weights[1] < 0.5 < fusion.weights[0]  # b tempered well under a
    assert math.isclose(fusion.log_prior.exp().sum().item(), 1.0, rel_tol=1e-6)  # a distribution


def test_regression_is_the_weighted_mean_of_the_present_values() -> None:
    fusion = create_fusion("product", {"a": 1, "b": 1}, task="regression")
    fusion.weights.copy_(torch.tensor([3.0, 1.0]))
    z = {"a": torch.tensor([[1.0], [1.0], [1.0]]), "b": torch.tensor([[5.0], [5.0], [5.0]])}
    out = fusion(z, {"a": torch.tensor([T, F, F]), "b": torch.tensor([T, T, F])})
    torch.testing.assert_close(out, torch.tensor([[2.0], [5.0], [0.0]]))
