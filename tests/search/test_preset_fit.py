"""``fit(preset=...)``: the kept model is the one validation preferred, the search is recorded
and reloads, a time limit is kept, and a kept ensemble saves and predicts like one model."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse import MultimodalClassifier, MultimodalRegressor, load
from mmfuse.errors import MmfuseError

FAST = dict(epochs=6, patience=0, dim=16, num_threads=1, verbose=False, pretrained=False, lr=1e-2)


def _table(n: int, seed: int) -> pd.DataFrame:
    """A word and a number each carry half of the label (their sum decides it)."""
    rng = np.random.default_rng(seed)
    word = rng.integers(0, 2, n)
    x = rng.normal(size=n)
    filler = np.array(["the", "a", "some", "this", "one"])
    text = [f"{filler[rng.integers(0, 5)]} {'alpha' if w else 'beta'} {filler[rng.integers(0, 5)]}" for w in word]
    label = np.where((2 * word - 1) + x > 0, "yes", "no")
    return pd.DataFrame({"note": text, "x": x, "z": rng.normal(size=n), "label": label})


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> tuple[MultimodalClassifier, Path]:
    """The fast preset judged on one validation split (as on a table larger than SMALL_TABLE;
    test_small_table covers several)."""
    out = tmp_path_factory.mktemp("preset") / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mmfuse.search.halving.SMALL_TABLE", 0)
        clf = MultimodalClassifier(preset="fast", ensemble=False, **FAST).fit(_table(240, 0), target="label",
                                                                              out_dir=out)
    return clf, out


def test_the_kept_model_is_the_one_validation_preferred(fast: tuple[MultimodalClassifier, Path]) -> None:
    clf, _ = fast
    trials = clf.search_["trials"]
    assert [t["name"] for t in trials] == ["feature/attention md=0.3", "late/confidence", "late/product",
                                           "late/mean"]
    best = max(trials, key=lambda t: t["selection"])
    assert clf.search_["kept"] == clf.search_["best_single"] == best["name"]
    assert (clf.model_config_.level, clf.model_config_.fusion) == (best["level"], best["fusion"])
    assert clf.train_config_.modality_dropout == best["modality_dropout"]
    for t in trials:  # the selection score is the documented mix of its parts
        mix = 0.4 * t["clean"] + 0.2 * t["missing"] + 0.2 * t["shuffled"] + 0.2 * t["hidden"]
        assert t["selection"] == pytest.approx(mix, abs=1e-5)
    assert clf.metrics_["accuracy"] == pytest.approx(best["clean"], abs=1e-6)  # clean validation, same records


def test_the_search_is_written_and_reloaded(fast: tuple[MultimodalClassifier, Path]) -> None:
    clf, out = fast
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["search"]["preset"] == "fast" and doc["search"]["metric"] == "accuracy"
    again = load(out, verbose=False)
    assert list(again.leaderboard_["name"]) == list(clf.leaderboard_["name"])
    assert again.leaderboard_["selection"].is_monotonic_decreasing
    test = _table(30, 5)
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-6)


def test_a_time_limit_is_kept_and_what_did_not_fit_is_listed() -> None:
    started = time.perf_counter()
    slow = {**FAST, "epochs": 400}
    clf = MultimodalClassifier(preset="medium", time_limit=4.0, **slow).fit(_table(400, 1), target="label")
    took = time.perf_counter() - started
    assert took < 4.0 + 3.0  # the limit, plus at most about one epoch and the final scoring
    assert clf.search_["skipped"] or any(t["epochs_run"] < t["epochs"] for t in clf.search_["trials"])
    assert clf.search_["trials"]  # something finished, and was kept
    assert clf.predict(_table(5, 2)).shape == (5,)


def test_a_preset_keeps_its_own_time_limit_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmfuse.search import presets

    assert presets.PRESETS["best"].time_limit == presets.BEST_TIME_LIMIT == 3600
    assert presets.PRESETS["fast"].time_limit is None and presets.PRESETS["medium"].time_limit is None
    monkeypatch.setitem(presets.PRESETS, "medium", dataclasses.replace(presets.PRESETS["medium"], time_limit=4.0))
    started = time.perf_counter()
    clf = MultimodalClassifier(preset="medium", **{**FAST, "epochs": 400}).fit(_table(400, 1), target="label")
    assert time.perf_counter() - started < 4.0 + 3.0
    assert clf.search_["time_limit"] == pytest.approx(4.0, abs=0.01)
    assert clf.search_["skipped"] or any(t["epochs_run"] < t["epochs"] for t in clf.search_["trials"])


def test_the_default_fit_runs_fast_on_a_small_plain_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMFUSE_PRESET")  # the suite's own default is one model (conftest)
    clf = MultimodalClassifier(**FAST).fit(_table(120, 0), target="label")
    assert clf.preset == "auto" and clf.search_["preset"] == "fast"
    resolved = lambda resume=False, **params: MultimodalClassifier(**{**FAST, **params}).resolved_preset(resume)
    assert resolved() == "fast"
    for described in ({"level": "late"}, {"fusion": "concat"}, {"modality_dropout": 0.0}, {"finetune": "image"},
                      {"stream": True},
                      {"preset": "none"}, {"preset": None}):
        assert resolved(**described) is None, described
    assert resolved(resume=True) is None
    assert resolved(preset="medium") == "medium" and resolved(resume=True, preset="fast") == "fast"
    monkeypatch.setenv("MMFUSE_PRESET", "none")
    assert resolved() is None and resolved(preset="fast") == "fast"
    monkeypatch.setenv("MMFUSE_PRESET", "medium")
    assert resolved() == "medium"
    monkeypatch.setenv("MMFUSE_PRESET", "most")
    with pytest.raises(MmfuseError, match="MMFUSE_PRESET='most'"):
        resolved()
    with pytest.raises(MmfuseError, match="unknown preset 'most'"):
        resolved(preset="most")


def test_records_that_would_not_fit_in_memory_make_the_default_one_model_and_a_preset_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMFUSE_PRESET")
    monkeypatch.setattr("mmfuse.estimators.streaming.available_memory", lambda: 1)  # one byte free
    clf = MultimodalClassifier(**FAST).fit(_table(120, 0), target="label")
    assert not hasattr(clf, "search_") and clf.model_config_.level == "feature"  # one model, streamed
    with pytest.raises(MmfuseError, match=r"preset='fast' holds every prepared record in memory, but the "
                       r"prepared records take about \d+ MB and 0 MB of memory is available; .*preset='none'"):
        MultimodalClassifier(preset="fast", **FAST).fit(_table(120, 0), target="label")


def test_a_preset_checks_the_training_settings_before_any_work() -> None:
    table = _table(60, 0)
    with pytest.raises(MmfuseError, match="epochs and batch size must be at least 1"):
        MultimodalClassifier(preset="fast", **{**FAST, "epochs": 0}).fit(table, target="label")
    with pytest.raises(MmfuseError, match="invalid training settings: lr=-1"):
        MultimodalClassifier(preset="medium", **{**FAST, "lr": -1.0}).fit(table, target="label")


def test_a_preset_trains_its_finalists_for_the_epochs_asked() -> None:
    clf = MultimodalClassifier(preset="medium", **{**FAST, "epochs": 1}).fit(_table(60, 0), target="label")
    rungs = {t["rung"]: t["epochs"] for t in clf.search_["trials"]}
    assert rungs == {1: 1, 2: 1}  # an early rung's floor of 2 epochs never exceeds the full budget


def test_a_single_model_stops_at_its_time_limit() -> None:
    clf = MultimodalClassifier(time_limit=1.5, **{**FAST, "epochs": 5000}).fit(_table(400, 1), target="label")
    assert 1 <= len(clf.history_) < 5000
    assert clf.train_seconds_ < 1.5 + 2.0


def test_the_metric_chooses_and_is_checked() -> None:
    reg = MultimodalRegressor(preset="fast", metric="mae", ensemble=False, **FAST)
    table = _table(120, 3).assign(label=lambda d: d["x"] + (d["note"].str.contains("alpha") * 1.0))
    reg.fit(table, target="label")
    judged = [t for t in reg.search_["trials"] if "mean_selection" in t]  # a small table: over 2 splits
    assert judged
    best = min(judged, key=lambda t: t["mean_selection"])  # mae: lower is better
    assert reg.search_["metric"] == "mae" and reg.search_["kept"] == best["name"]
    with pytest.raises(MmfuseError, match="'mae' is not a classification metric"):
        MultimodalClassifier(preset="fast", metric="mae", **FAST).fit(_table(60, 0), target="label")
    with pytest.raises(MmfuseError, match="--resume does not apply to --preset"):
        MultimodalClassifier(preset="fast", **FAST).fit(_table(60, 0), target="label", out_dir="unused", resume=True)


def test_the_cli_fits_a_preset_and_info_shows_its_leaderboard(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mmfuse.cli.main import main

    _table(120, 7).to_csv(tmp_path / "t.csv", index=False)
    args = ["fit", str(tmp_path / "t.csv"), "--target", "label", "--preset", "fast", "--time-limit", "60",
            "--no-pretrained", "--epochs", "3", "--dim", "16", "--threads", "1", "--quiet", "--out", str(tmp_path / "m")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "m")]) == 0
    shown = capsys.readouterr().out
    assert "preset fast: 4 trial(s)" in shown
    names = ("feature/attention md=0.3", "late/confidence", "late/product", "late/mean")
    assert all(name in shown for name in names)
    search = json.loads((tmp_path / "m" / "metrics.json").read_text())["search"]
    # a small table: a mixture of the finalists' bags (each finalist's models on both splits)
    assert search["kept"] == "bags" and search["ensemble"]["splits"] == 2
    members = ", ".join(f"{n} x{w:g}" for n, w in search["ensemble"]["members"].items())
    assert f"kept: an ensemble of bags ({members}), each finalist's models on all 2 splits averaged" in shown


def test_info_says_why_a_candidate_was_skipped_or_not_chosen_from() -> None:
    from mmfuse.cli.report import search_table

    trial = {"name": "feature/attention md=0.3", "rung": 1, "epochs_run": 3, "clean": 0.9, "selection": 0.8,
             "seconds": 1.0}
    record = {"preset": "best", "metric": "accuracy", "seconds": 2.0, "kept": "feature/attention md=0.3",
              "trials": [trial, {**trial, "name": "feature/attention md=0.3 finetune=note", "selection": 0.85,
                                 "dropped": "+0.0100 (standard error 0.0200) over ..."}],
              "skipped": [{"name": "late/mean", "rung": 2, "expected_seconds": 9.0, "why": "about 9s would pass the time limit"},
                          {"name": "feature/attention md=0.3 finetune=note", "rung": 1, "trained": True,
                           "why": "+0.0100 (standard error 0.0200) over ..."},
                          {"name": "late/confidence", "rung": 3}]}  # written before "why" was recorded
    lines = search_table(record).splitlines()
    assert "skipped at rung 2: late/mean (about 9s would pass the time limit)" in lines
    assert "trained but not chosen from: feature/attention md=0.3 finetune=note (+0.0100 (standard error 0.0200) over ...)" in lines
    assert "skipped at rung 3: late/confidence (time limit)" in lines
    assert lines[-1] == "kept: feature/attention md=0.3"
