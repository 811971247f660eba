"""The modality guard: statistics, thresholds, the mask it returns, and a model that uses it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mmfuse import MultimodalClassifier
from mmfuse.estimators.io import load
from mmfuse.models.builder import ModelConfig, build_model
from mmfuse.models.guard import MARGIN, MIN_RECORDS, QUANTILE, ModalityGuard
from mmfuse.types import InputSpec


def _gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, d))).float()


def _fitted(d: int = 4) -> ModalityGuard:
    guard = ModalityGuard({"a": d, "b": d})
    guard.fit({"a": _gaussian(500, d, 0), "b": _gaussian(500, d, 1)},
              {"a": _gaussian(200, d, 2), "b": _gaussian(200, d, 3)})
    return guard


def test_an_unfitted_guard_trusts_everything() -> None:
    guard = ModalityGuard({"a": 3, "b": 3}).eval()
    z = {"a": torch.full((2, 3), 1e6), "b": torch.zeros(2, 3)}
    mask = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    out = guard(z, mask)
    assert {m: v.tolist() for m, v in out.items()} == {"a": [True, False], "b": [True, True]}
    assert guard.thresholds() == {"a": float("inf"), "b": float("inf")}


def test_the_threshold_is_the_margin_times_the_validation_quantile() -> None:
    guard = _fitted()
    held = guard.score("a", _gaussian(200, 4, 2)).numpy()
    assert guard.thresholds()["a"] == pytest.approx(MARGIN * float(np.quantile(held, QUANTILE)), rel=1e-6)
    # about 1 for records like the training ones: the score is a squared distance over the width
    assert 0.7 < float(guard.score("a", _gaussian(1000, 4, 9)).mean()) < 1.3


def test_a_far_outlier_is_turned_off_and_a_typical_record_kept() -> None:
    guard = _fitted()
    z = {"a": torch.tensor([[0.1, -0.2, 0.3, 0.0], [40.0, -40.0, 40.0, 40.0], [0.0] * 4]),
         "b": torch.zeros(3, 4)}
    mask = {"a": torch.tensor([True, True, False]), "b": torch.tensor([True, True, True]),
            "c": torch.tensor([True, False, True])}  # a modality the guard does not know passes
    out = guard(z, mask)
    assert out["a"].tolist() == [True, False, False]  # a missing row stays missing
    assert out["b"].tolist() == [True, True, True]
    assert out["c"].tolist() == [True, False, True]


def test_a_record_with_every_modality_anomalous_keeps_the_least_anomalous() -> None:
    guard = _fitted()
    t = guard.thresholds()
    # a: 30 x its threshold, b: 5 x its threshold (scores of x * ones(4): x^2 * sum(precision) / 4)
    def at(m: str, times: float) -> torch.Tensor:
        unit = float(guard.score(m, torch.ones(1, 4)))
        return torch.full((1, 4), (times * t[m] / unit) ** 0.5)

    z = {"a": at("a", 30.0), "b": at("b", 5.0)}
    mask = {"a": torch.tensor([True]), "b": torch.tensor([True])}
    out = guard(z, mask)
    assert (out["a"].item(), out["b"].item()) == (False, True)
    # b absent: a is all there is, and it is kept
    out = guard(z, {"a": torch.tensor([True]), "b": torch.tensor([False])})
    assert (out["a"].item(), out["b"].item()) == (True, False)


def test_too_few_records_leave_a_modality_unfitted() -> None:
    guard = ModalityGuard({"a": 2, "b": 2})
    few = MIN_RECORDS - 1
    t = guard.fit({"a": _gaussian(100, 2, 0), "b": _gaussian(few, 2, 1)},
                  {"a": _gaussian(100, 2, 2), "b": _gaussian(100, 2, 3)})
    assert np.isfinite(t["a"]) and t["b"] == float("inf")


def test_the_model_uses_the_guard_in_eval_mode_only() -> None:
    specs = {m: InputSpec("embedding", (4,)) for m in ("a", "b")}
    config = ModelConfig("feature", "concat", {"a": "mlp", "b": "mlp"}, "classification", 2, dim=8, guard=True)
    model = build_model(config, specs)
    assert model.guard is not None
    torch.manual_seed(0)
    x = {m: torch.randn(64, 4) for m in specs}
    mask = {m: torch.ones(64, dtype=torch.bool) for m in specs}
    with torch.no_grad():
        model.eval()
        model.guard.threshold_b.fill_(1e-12)  # every b embedding distrusted, every a one trusted
        out = model(x, mask)
        assert not out.mask["b"].any() and out.mask["a"].all()
        hidden = model(x, {"a": mask["a"], "b": torch.zeros(64, dtype=torch.bool)})
        torch.testing.assert_close(out.logits, hidden.logits)
        model.train()
        assert model(x, mask).mask["b"].all()  # training hides modalities by its own dropout


def _two_views(n: int, seed: int, drowned: bool = False) -> pd.DataFrame:
    """A binary label seen by an embedding column ``a`` and six numeric columns (the tabular
    modality), each about 90 % accurate alone; ``drowned``: the numbers replaced by noise 30
    times their spread."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # along a direction with a zero mean (the embedding encoder's LayerNorm removes a row's mean)
    centre = np.where(y[:, None] == 1, 1.0, -1.0) * np.array([0.6, -0.6] * 3)
    a = centre + rng.normal(size=(n, 6))
    b = centre + rng.normal(size=(n, 6))
    if drowned:
        b = rng.normal(size=(n, 6)) * 30
    return pd.DataFrame({"a": list(a), **{f"b{i}": b[:, i] for i in range(6)},
                         "label": np.where(y == 1, "yes", "no")})


def test_a_modality_drowned_in_noise_falls_back_on_the_other(tmp_path) -> None:
    train, test, drowned = _two_views(600, 0), _two_views(300, 1), _two_views(300, 1, drowned=True)
    common = dict(epochs=25, seed=0, verbose=False)
    guarded = MultimodalClassifier(**common).fit(train, target="label")
    plain = MultimodalClassifier(**common, guard=False).fit(train, target="label")
    assert guarded.model_config_.guard and not plain.model_config_.guard
    assert guarded.model_.guard is not None and plain.model_.guard is None

    def acc(est: MultimodalClassifier, df: pd.DataFrame) -> float:
        return float(est.evaluate(df)["accuracy"])

    assert acc(guarded, test) == acc(plain, test)  # records like the training ones: nothing is dropped
    a_alone = acc(guarded, test.assign(**{f"b{i}": np.nan for i in range(6)}))  # the same model, b missing
    assert acc(guarded, drowned) == a_alone
    assert acc(plain, drowned) < a_alone - 0.1
    # saved and loaded: the thresholds travel with the weights
    guarded.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.model_.guard.thresholds() == guarded.model_.guard.thresholds()
    assert acc(loaded, drowned) == acc(guarded, drowned)


def test_no_guard_without_missing_modalities_in_training() -> None:
    est = MultimodalClassifier(epochs=2, seed=0, verbose=False, modality_dropout=0.0).fit(_two_views(100, 0), target="label")
    assert not est.model_config_.guard and est.model_.guard is None


def test_a_decision_level_model_is_guarded_without_missing_modalities_in_training() -> None:
    # its combiner joins whichever opinions are present: no training with missing ones needed
    train, test, drowned = _two_views(600, 0), _two_views(300, 1), _two_views(300, 1, drowned=True)
    est = MultimodalClassifier(level="late", modality_dropout=0.0, epochs=25, seed=0, verbose=False)
    est.fit(train, target="label")
    assert est.model_config_.guard and est.model_.guard is not None
    a_alone = float(est.evaluate(test.assign(**{f"b{i}": np.nan for i in range(6)}))["accuracy"])
    assert float(est.evaluate(drowned)["accuracy"]) == a_alone


@pytest.mark.parametrize("preset", ["none", "fast"])  # one model; the default's ensemble of guarded members
def test_predict_and_evaluate_name_what_the_guard_distrusted(tmp_path, preset: str) -> None:
    from mmfuse.cli.main import main

    train = _two_views(300, 0)
    guarded = MultimodalClassifier(epochs=10, seed=0, verbose=False, preset=preset).fit(train, target="label")
    assert guarded.model_config_.level == ("ensemble" if preset == "fast" else "feature")
    guarded.save(tmp_path / "m")
    test = _two_views(20, 1)
    drowned = _two_views(20, 1, drowned=True)
    mixed = pd.concat([test.iloc[:10], drowned.iloc[10:]], ignore_index=True)
    frame, _ = guarded.predict_frame(mixed)
    assert list(frame.columns[:3]) == ["row", "prediction", "distrusted"]
    assert frame["distrusted"].tolist() == [""] * 10 + ["tabular"] * 10
    path = tmp_path / "mixed.parquet"
    mixed.assign(a=[list(v) for v in mixed["a"]]).to_parquet(path)
    assert main(["evaluate", str(tmp_path / "m"), str(path), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["distrusted"] == {"a": 0, "tabular": 10}
    plain = MultimodalClassifier(epochs=2, seed=0, verbose=False, guard=False).fit(train, target="label")
    assert "distrusted" not in plain.predict_frame(mixed)[0].columns


def test_a_feature_vector_drowned_in_noise_is_set_aside_by_the_input_test() -> None:
    # the embedding column a is tested on its vector too; the tabular numbers are not vectors
    train, test = _two_views(600, 0), _two_views(300, 1)
    est = MultimodalClassifier(epochs=25, seed=0, verbose=False).fit(train, target="label")
    guard = est.model_.guard
    assert est.model_config_.guard_inputs and list(guard.inputs) == ["a"]
    assert np.isfinite(guard.input_thresholds()["a"])
    rng = np.random.default_rng(5)
    drowned = test.assign(a=[v + rng.normal(size=6) * 30 for v in test["a"]])
    vectors = torch.tensor(np.stack(drowned["a"].to_list()), dtype=torch.float32)
    assert (guard.inputs["a"].ratio(vectors) > 1).all()
    frame, _ = est.predict_frame(drowned)
    assert set(frame["distrusted"]) == {"a"}
    b_alone = est.predict_frame(test.assign(a=None))[0]["prediction"]
    assert frame["prediction"].tolist() == b_alone.tolist()
    assert set(est.predict_frame(test)[0]["distrusted"]) == {""}  # records like the training ones


def test_a_model_saved_before_the_input_test_loads_without_it() -> None:
    specs = {"a": InputSpec("embedding", (4,)), "b": InputSpec("embedding", (4,))}
    old = {"level": "feature", "fusion": "concat", "encoders": {"a": "mlp", "b": "mlp"},
           "task": "classification", "num_outputs": 2, "dim": 8, "guard": True}
    model = build_model(ModelConfig.from_dict(old), specs)
    assert model.guard is not None and not len(model.guard.inputs)
    assert not any(k.startswith("guard.inputs") for k in model.state_dict())


def test_explanations_set_aside_what_the_input_test_distrusts() -> None:
    from mmfuse.evaluation.contribution import model_value_fn

    est = MultimodalClassifier(epochs=10, seed=0, verbose=False).fit(_two_views(300, 0), target="label")
    test = _two_views(20, 1)
    rng = np.random.default_rng(5)
    drowned = test.assign(a=[v + rng.normal(size=6) * 30 for v in test["a"]])
    value = model_value_fn(est.model_, est.prepare(drowned), "classification", 64)
    assert not value.data.mask["a"].any()  # set aside, as predict has it
    b_alone = model_value_fn(est.model_, est.prepare(test.assign(a=None)), "classification", 64)
    np.testing.assert_allclose(value.outputs, b_alone.outputs, atol=1e-6)
