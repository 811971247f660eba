"""The best preset tunes the halving's winner with Optuna, or says why it did not."""

from __future__ import annotations

import sys

import pytest

from mmfuse import MultimodalClassifier
from mmfuse.search.halving import Search
from mmfuse.search.presets import PRESETS, Candidate
from mmfuse.search.tuning import tune

from test_preset_fit import FAST, _table


def _search_after_halving() -> Search:
    """A finished fast search over two candidates (what tune starts from)."""
    from mmfuse.search.halving import Prepared
    from mmfuse.search.validation import Views

    est = MultimodalClassifier(**FAST)
    pre, train, valid = est.prepared(est.read(_table(160, 4)), "label", None)
    search = Search(est, PRESETS["best"], "classification", "accuracy", 0.0, None)
    search.prepared["default"] = Prepared(pre, train, valid, Views.build(valid, 0))
    search.run([Candidate("feature/concat md=0.3", "default", {"level": "feature", "fusion": "concat",
                                                               "modality_dropout": 0.3})])
    return search


def test_tuning_adds_trials_around_the_winner() -> None:
    pytest.importorskip("optuna")
    search = _search_after_halving()
    before, winner = len(search.trials), search.best()
    tune(search, 3)
    tuned = search.trials[before:]
    assert [t.candidate.name for t in tuned] == [f"feature/concat md=0.3 tuned {i}" for i in (1, 2, 3)]
    for t in tuned:  # the winner's choices stay; the tuned numbers are within their ranges
        assert t.candidate.params["fusion"] == "concat" and t.candidate.params["level"] == "feature"
        assert FAST["lr"] / 4 <= t.candidate.params["lr"] <= FAST["lr"] * 4
        assert t.candidate.params["dim"] in (64, 128, 256)
        assert 0.0 <= t.candidate.params["modality_dropout"] <= 0.5
        assert t.estimator.model_config_.dim == t.candidate.params["dim"]
        assert t.rung == winner.rung and t.epochs == winner.epochs  # tuned at the winner's budget
    assert search.best().scores["selection"] == max(t.scores["selection"] for t in search.trials)


def test_without_optuna_the_halving_result_stands(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    search = _search_after_halving()
    search.est.verbose = True
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    before = len(search.trials)
    tune(search, 3)
    assert len(search.trials) == before
    assert "pip install 'mmfuse[search]'" in capsys.readouterr().err
