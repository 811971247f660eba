"""On a small table a preset judges its finalists on several random splits and keeps the chosen
finalists' models on every split (their bags, mixed by greedy selection); a trial that early
stopping ended is not trained again."""

from __future__ import annotations

import numpy as np
import pytest

from mmfuse import MultimodalClassifier, load
from mmfuse.search.presets import PRESETS

from test_preset_fit import FAST, _table


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> tuple[MultimodalClassifier, object]:
    out = tmp_path_factory.mktemp("small") / "model"
    clf = MultimodalClassifier(preset="medium", **{**FAST, "epochs": 24, "patience": 2}).fit(
        _table(200, 3), target="label", out_dir=out)
    return clf, out


def test_the_finalists_are_judged_by_their_mean_over_splits(medium: tuple[MultimodalClassifier, object]) -> None:
    clf, _ = medium
    splits = PRESETS["medium"].splits
    judged = [t for t in clf.search_["trials"] if "splits" in t]
    assert judged and all(t["splits"] == splits for t in judged)
    best = max(judged, key=lambda t: t["mean_selection"])
    assert clf.search_["best_single"] == best["name"]
    # a finalist's mean is over its own split and the others: not its first split's score
    assert any(t["mean_selection"] != pytest.approx(t["selection"]) for t in judged)


def test_the_kept_model_holds_the_chosen_finalists_models_on_every_split(
        medium: tuple[MultimodalClassifier, object]) -> None:
    clf, out = medium
    splits = PRESETS["medium"].splits
    record = clf.search_["ensemble"]
    assert clf.search_["kept"] == ("bag" if len(record["members"]) == 1 else "bags") and record["splits"] == splits
    assert clf.search_["best_single"] in record["members"]  # selection starts from the best finalist
    # each chosen finalist's weight spread equally over its models on the splits
    weights = [w / splits for w in record["members"].values() for _ in range(splits)]
    assert clf.model_config_.level == "ensemble"
    np.testing.assert_allclose(clf.model_config_.member_weights, weights, atol=1e-4)
    weights, members = clf.model_config_.member_weights, clf.model_.members
    test = _table(30, 11)
    enc = clf.prepare(test)
    import torch

    inputs = {m: torch.from_numpy(v) for m, v in enc.inputs.items()}
    mask = {m: torch.from_numpy(v) for m, v in enc.mask.items()}
    with torch.no_grad():
        mean = sum(w * m(inputs, mask).require_logits().softmax(-1) for w, m in zip(weights, members))
    np.testing.assert_allclose(clf.predict_proba(test), mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(load(out, verbose=False).predict_proba(test), mean.numpy(), atol=1e-5)


def test_a_trial_ended_by_early_stopping_moves_up_a_rung_unchanged(medium: tuple[MultimodalClassifier, object]) -> None:
    clf, _ = medium
    trials = clf.search_["trials"]
    names_at = {r: [t["name"] for t in trials if t["rung"] == r] for r in (1, 2)}
    reused = [t for t in trials if t["rung"] == 1 and "splits" in t]  # finalists never trained at rung 2
    assert reused, "no finalist was stopped early at rung 1: the test data no longer exercise this"
    for t in reused:
        assert t["epochs_run"] < t["epochs"] and t["name"] not in names_at[2]
