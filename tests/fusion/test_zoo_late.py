"""Known values and fitting behaviour of the decision-level operators weighted, vote, stacking
and confidence, and what every fitted one shares (with product: tests/fusion/test_product.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as fn
from torch import Tensor

from mmfuse.fusion import create_fusion

T, F = True, False
FITTED = ("weighted", "stacking", "confidence", "product")


def mask_of(**rows: list[bool]) -> dict[str, Tensor]:
    return {m: torch.tensor(v) for m, v in rows.items()}


def log_loss(logits: Tensor, targets: Tensor) -> float:
    return fn.cross_entropy(logits, targets.long()).item()


def classification_data(
    n: int, seed: int, flip_b: bool = False, num_classes: int = 3
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """Modality a is accurate; b is random noise, or (flip_b) confidently anti-correlated."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (n,), generator=g)
    onehot = fn.one_hot(y, num_classes).float()
    a = 2.0 * onehot + torch.randn(n, num_classes, generator=g)
    if flip_b:
        b = 3.0 * fn.one_hot((y + 1) % num_classes, num_classes).float()
        b = b + 0.5 * torch.randn(n, num_classes, generator=g)
    else:
        b = 2.0 * torch.randn(n, num_classes, generator=g)
    mask = {"a": torch.rand(n, generator=g) > 0.1, "b": torch.rand(n, generator=g) > 0.1}
    return {"a": a, "b": b}, mask, y.float()


def regression_data(
    n: int, seed: int, flip_b: bool = False
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """Modality a is accurate; b is noise, or (flip_b) the negated target."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, generator=g)
    a = (y + 0.3 * torch.randn(n, generator=g)).unsqueeze(1)
    b = (-y if flip_b else torch.randn(n, generator=g)) + 0.3 * torch.randn(n, generator=g)
    mask = {"a": torch.rand(n, generator=g) > 0.1, "b": torch.rand(n, generator=g) > 0.1}
    return {"a": a, "b": b.unsqueeze(1)}, mask, y


def mse(pred: Tensor, y: Tensor) -> float:
    return fn.mse_loss(pred.squeeze(1), y).item()


# --- shared behaviour of the fitted operators --------------------------------------------------


@pytest.mark.parametrize("name", FITTED + ("vote",))
def test_no_parameters_fitted_state_in_buffers(name: str) -> None:
    fusion = create_fusion(name, {"a": 3, "b": 3})
    assert list(fusion.parameters()) == []
    assert getattr(fusion, "requires_fit", False) is (name in ("weighted", "stacking"))


@pytest.mark.parametrize("name", ("weighted", "stacking"))
@pytest.mark.parametrize("task", ("classification", "regression"))
def test_unfitted_equals_mean(name: str, task: str) -> None:
    width = 3 if task == "classification" else 1
    outputs = {m: torch.randn(5, width) for m in "abc"}
    mask = mask_of(a=[T, T, F, F, T], b=[T, F, T, F, F], c=[F, T, T, F, T])
    mean = create_fusion("mean", {m: width for m in "abc"}, task=task)
    fusion = create_fusion(name, {m: width for m in "abc"}, task=task)
    torch.testing.assert_close(fusion(outputs, mask), mean(outputs, mask))


@pytest.mark.parametrize("name", FITTED)
@pytest.mark.parametrize("task", ("classification", "regression"))
def test_fitted_ignores_missing_and_round_trips(name: str, task: str) -> None:
    data = classification_data(200, 0) if task == "classification" else regression_data(200, 0)
    width = data[0]["a"].shape[1]
    fusion = create_fusion(name, {"a": width, "b": width}, task=task)
    fusion.fit_combiner(*data)
    outputs = {"a": torch.randn(3, width), "b": torch.randn(3, width)}
    mask = mask_of(a=[T, F, F], b=[F, T, F])
    out = fusion(outputs, mask)
    poisoned = {m: torch.where(mask[m].unsqueeze(1), t, float("nan")) for m, t in outputs.items()}
    torch.testing.assert_close(fusion(poisoned, mask), out, rtol=0, atol=0)
    assert torch.isfinite(out).all()
    restored = create_fusion(name, {"a": width, "b": width}, task=task)
    restored.load_state_dict(fusion.state_dict())
    torch.testing.assert_close(restored(outputs, mask), out, rtol=0, atol=0)


@pytest.mark.parametrize("name", ("weighted", "stacking", "product"))
def test_fit_combiner_checks_its_inputs(name: str) -> None:
    fusion = create_fusion(name, {"a": 3, "b": 3})
    outputs, mask, y = classification_data(20, 0)
    with pytest.raises(ValueError, match="'b'"):
        fusion.fit_combiner({"a": outputs["a"], "b": outputs["b"][:5]}, mask, y)
    with pytest.raises(ValueError, match="class indices"):
        fusion.fit_combiner(outputs, mask, y + 3)
    with pytest.raises(ValueError, match="no record"):
        fusion.fit_combiner(outputs, {m: torch.zeros(20, dtype=torch.bool) for m in mask}, y)


# --- weighted ----------------------------------------------------------------------------------


def test_weighted_set_weights_match_manual() -> None:
    fusion = create_fusion("weighted", {"a": 2, "b": 2, "c": 2})
    fusion.weights.copy_(torch.tensor([0.5, 0.3, 0.2]))
    z = {"a": torch.tensor([[2.0, 0.0]] * 3), "b": torch.tensor([[0.0, 1.0]] * 3)}
    z["c"] = torch.tensor([[1.0, 1.0]] * 3)
    p = {m: v.softmax(-1) for m, v in z.items()}
    out = fusion(z, mask_of(a=[T, T, F], b=[T, F, F], c=[T, T, F])).softmax(-1)
    expected = torch.stack(
        [
            0.5 * p["a"][0] + 0.3 * p["b"][0] + 0.2 * p["c"][0],
            (0.5 * p["a"][1] + 0.2 * p["c"][1]) / 0.7,
            torch.tensor([0.5, 0.5]),
        ]
    )
    torch.testing.assert_close(out, expected)


def test_weighted_regression_set_weights_match_manual() -> None:
    fusion = create_fusion("weighted", {"a": 1, "b": 1}, task="regression")
    fusion.weights.copy_(torch.tensor([0.75, 0.25]))
    values = {"a": torch.tensor([[4.0], [4.0], [4.0]]), "b": torch.tensor([[8.0], [8.0], [8.0]])}
    out = fusion(values, mask_of(a=[T, F, F], b=[T, T, F]))
    torch.testing.assert_close(out, torch.tensor([[5.0], [8.0], [0.0]]))


def test_weighted_zero_weight_alone_counts() -> None:
    fusion = create_fusion("weighted", {"a": 1, "b": 1}, task="regression")
    fusion.weights.copy_(torch.tensor([1.0, 0.0]))
    values = {"a": torch.tensor([[4.0], [4.0]]), "b": torch.tensor([[8.0], [8.0]])}
    out = fusion(values, mask_of(a=[T, F], b=[T, T]))
    torch.testing.assert_close(out, torch.tensor([[4.0], [8.0]]))


def test_weighted_fit_prefers_accurate_modality() -> None:
    fusion = create_fusion("weighted", {"a": 3, "b": 3})
    mean = create_fusion("mean", {"a": 3, "b": 3})
    fusion.fit_combiner(*classification_data(300, 0))
    weights = fusion.weights
    assert weights[0] > 2 * weights[1] and math.isclose(weights.sum().item(), 1.0, rel_tol=1e-6)
    outputs, mask, y = classification_data(300, 1)  # fresh records
    assert log_loss(fusion(outputs, mask), y) < log_loss(mean(outputs, mask), y) - 0.05
    again = create_fusion("weighted", {"a": 3, "b": 3})
    again.fit_combiner(*classification_data(300, 0))
    torch.testing.assert_close(again.weights, weights, rtol=0, atol=0)  # deterministic


def test_weighted_regression_fit_prefers_accurate_modality() -> None:
    fusion = create_fusion("weighted", {"a": 1, "b": 1}, task="regression")
    mean = create_fusion("mean", {"a": 1, "b": 1}, task="regression")
    fusion.fit_combiner(*regression_data(300, 0))
    assert fusion.weights[0] > 2 * fusion.weights[1]
    outputs, mask, y = regression_data(300, 1)
    assert mse(fusion(outputs, mask), y) < mse(mean(outputs, mask), y) - 0.1


def test_weighted_fit_works_under_no_grad() -> None:
    fusion = create_fusion("weighted", {"a": 3, "b": 3})
    with torch.no_grad():
        fusion.fit_combiner(*classification_data(100, 0))
    assert fusion.weights[0] > fusion.weights[1]


# --- vote ----------------------------------------------------------------------------------


def test_vote_majority_and_tie_break() -> None:
    fusion = create_fusion("vote", {"a": 3, "b": 3, "c": 3})
    z = {
        "a": torch.tensor([[5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        "b": torch.tensor([[0.0, 1.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]),
        "c": torch.tensor([[0.0, 1.0, 0.0], [9.0, 9.0, 9.0], [0.0, 0.0, 1.0]]),
    }
    mask = mask_of(a=[T, T, F], b=[T, T, F], c=[T, F, F])
    out = fusion(z, mask)
    # sample 0: votes (1, 2, 0): class 1 wins although a's probability on class 0 is high;
    # sample 1: a -> 0, b -> 1 tie; b is more confident, so the mean probability picks class 1
    assert out.argmax(-1)[:2].tolist() == [1, 1]
    p = {m: v.softmax(-1) for m, v in z.items()}
    mean0 = (p["a"][0] + p["b"][0] + p["c"][0]) / 3
    mean1 = (p["a"][1] + p["b"][1]) / 2
    votes = torch.tensor([[1.0, 2.0, 0.0], [1.0, 1.0, 0.0]])
    scores = votes + 1e-3 * torch.stack([mean0, mean1])
    torch.testing.assert_close(out[:2], (scores / scores.sum(-1, keepdim=True)).log())
    torch.testing.assert_close(out[2], torch.full((3,), -math.log(3)))  # none present


def test_vote_gradient_flows_through_tie_break_term() -> None:
    fusion = create_fusion("vote", {"a": 3, "b": 3})
    z = {m: torch.randn(2, 3, requires_grad=True) for m in "ab"}
    fusion(z, mask_of(a=[T, T], b=[T, F]))[:, 0].sum().backward()
    assert z["a"].grad is not None and z["a"].grad.abs().sum() > 0
    assert z["b"].grad is not None and (z["b"].grad[1] == 0).all()


def test_vote_regression_median() -> None:
    fusion = create_fusion("vote", {"a": 1, "b": 1, "c": 1}, task="regression")
    values = {
        "a": torch.tensor([[1.0], [1.0], [7.0], [1.0]]),
        "b": torch.tensor([[5.0], [5.0], [2.0], [1.0]]),
        "c": torch.tensor([[2.0], [float("nan")], [3.0], [1.0]]),
    }
    out = fusion(values, mask_of(a=[T, T, T, F], b=[T, T, F, F], c=[T, F, F, F]))
    torch.testing.assert_close(out, torch.tensor([[2.0], [3.0], [7.0], [0.0]]))


# --- stacking ------------------------------------------------------------------------------


def test_stacking_features_layout() -> None:
    fusion = create_fusion("stacking", {"b": 2, "a": 2})
    assert fusion.num_features == 6 and fusion.coef.shape == (6, 2)
    y = torch.tensor([[[0.0, 0.0], [1.0, 3.0]]])  # (1, M=2, C=2), modality b missing
    x = fusion.features(y, torch.tensor([[True, False]]))
    torch.testing.assert_close(x, torch.tensor([[-math.log(2), -math.log(2), 1.0, 0, 0, 0]]))


def test_stacking_beats_mean_with_anti_correlated_modality() -> None:
    fusion = create_fusion("stacking", {"a": 3, "b": 3})
    mean = create_fusion("mean", {"a": 3, "b": 3})
    fusion.fit_combiner(*classification_data(300, 0, flip_b=True))
    assert bool(fusion.fitted)
    outputs, mask, y = classification_data(300, 1, flip_b=True)
    out = fusion(outputs, mask)
    assert log_loss(out, y) < log_loss(mean(outputs, mask), y) - 0.3
    accuracy = (out.argmax(-1) == y.long()).float().mean()
    assert accuracy > (mean(outputs, mask).argmax(-1) == y.long()).float().mean() + 0.1
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(300))


def test_stacking_cross_fitted_predict_is_out_of_fold() -> None:
    fusion = create_fusion("stacking", {"a": 3, "b": 3})
    outputs, mask, y = classification_data(120, 0, flip_b=True)
    fusion.fit_combiner(outputs, mask, y)
    coef = fusion.coef.clone()
    oof = fusion.cross_fitted_predict(outputs, mask, y, folds=4, seed=0)
    assert oof.shape == (120, 3) and torch.isfinite(oof).all()
    in_sample = fusion(outputs, mask)
    assert not torch.allclose(oof, in_sample)
    assert log_loss(oof, y) > log_loss(in_sample, y)  # in-sample is optimistic
    torch.testing.assert_close(fusion.coef, coef, rtol=0, atol=0)  # self unchanged
    torch.testing.assert_close(fusion.cross_fitted_predict(outputs, mask, y, 4, 0), oof)
    with pytest.raises(ValueError, match="folds"):
        fusion.cross_fitted_predict(outputs, mask, y, folds=1)


def test_stacking_ridge_recovers_linear_combination() -> None:
    fusion = create_fusion("stacking", {"a": 1, "b": 1}, task="regression")
    g = torch.Generator().manual_seed(0)
    outputs = {m: torch.randn(50, 1, generator=g) for m in "ab"}
    mask = {m: torch.ones(50, dtype=torch.bool) for m in "ab"}
    y = 2.0 * outputs["a"][:, 0] - outputs["b"][:, 0] + 0.5
    fusion.fit_combiner(outputs, mask, y, alpha=0.0)
    torch.testing.assert_close(fusion(outputs, mask)[:, 0], y, atol=1e-4, rtol=0)
    only_a = fusion({"a": torch.tensor([[1.0]]), "b": torch.tensor([[9.0]])}, mask_of(a=[T], b=[F]))
    assert torch.isfinite(only_a).all()


def test_stacking_regression_beats_mean_with_anti_correlated_modality() -> None:
    fusion = create_fusion("stacking", {"a": 1, "b": 1}, task="regression")
    mean = create_fusion("mean", {"a": 1, "b": 1}, task="regression")
    fusion.fit_combiner(*regression_data(300, 0, flip_b=True))
    outputs, mask, y = regression_data(300, 1, flip_b=True)
    assert mse(fusion(outputs, mask), y) < mse(mean(outputs, mask), y) - 0.3
    oof = fusion.cross_fitted_predict(outputs, mask, y)
    assert oof.shape == (300, 1) and mse(oof, y) < mse(mean(outputs, mask), y)


# --- confidence ----------------------------------------------------------------------------


def test_confidence_discounts_uniform_modality_and_matches_formula() -> None:
    fusion = create_fusion("confidence", {"a": 3, "b": 3, "c": 3})
    z = {
        "a": torch.tensor([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]]),
        "b": torch.zeros(2, 3),  # maximal entropy
        "c": torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]),
    }
    mask = mask_of(a=[T, F], b=[T, T], c=[T, T])
    p = {m: v.softmax(-1) for m, v in z.items()}
    h = {m: -(q * q.log()).sum(-1) for m, q in p.items()}
    assert torch.isclose(h["b"][0], torch.tensor(math.log(3)))
    w = {m: torch.exp(-h[m]) for m in z}
    assert w["b"][0] < w["c"][0] < w["a"][0]
    row0 = sum(w[m][0] * p[m][0] for m in z) / sum(w[m][0] for m in z)
    row1 = (w["b"][1] * p["b"][1] + w["c"][1] * p["c"][1]) / (w["b"][1] + w["c"][1])
    out = fusion(z, mask)
    torch.testing.assert_close(out.exp(), torch.stack([row0, row1]))
    mean = create_fusion("mean", {"a": 3, "b": 3, "c": 3})
    assert out.exp()[0, 0] > mean(z, mask).exp()[0, 0]  # the confident modality counts more
    fusion.temperature.fill_(math.inf)
    torch.testing.assert_close(fusion(z, mask), mean(z, mask))


def test_confidence_fit_picks_best_temperature_on_grid() -> None:
    fusion = create_fusion("confidence", {"a": 3, "b": 3})
    outputs, mask, y = classification_data(300, 0)
    losses = {}
    for t in (0.5, 1.0, math.inf):
        fusion.temperature.fill_(t)
        losses[t] = log_loss(fusion(outputs, mask), y)
    fusion.fit_combiner(outputs, mask, y, grid=(0.5, 1.0, math.inf))
    chosen = fusion.temperature.item()
    assert losses[chosen] == min(losses.values())
    with pytest.raises(ValueError, match="grid"):
        fusion.fit_combiner(outputs, mask, y, grid=(0.0,))


def test_confidence_regression_is_mean() -> None:
    fusion = create_fusion("confidence", {"a": 1, "b": 1}, task="regression")
    values = {"a": torch.tensor([[1.0], [2.0]]), "b": torch.tensor([[3.0], [9.0]])}
    out = fusion(values, mask_of(a=[T, T], b=[T, F]))
    torch.testing.assert_close(out, torch.tensor([[2.0], [2.0]]))
    fusion.fit_combiner(values, mask_of(a=[T, T], b=[T, F]), torch.zeros(2))  # no-op
    assert fusion.temperature.item() == 1.0
