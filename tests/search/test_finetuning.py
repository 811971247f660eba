"""The best preset's last step: the winner with a pretrained network fine-tuned, judged on the same
splits as the finalists, kept only where it wins by more than the splits' noise."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmfuse import MultimodalClassifier
from mmfuse.pretrained import BACKBONES
from mmfuse.search.finetuning import _gain, try_finetuned
from mmfuse.search.halving import Prepared, Search
from mmfuse.search.presets import PRESETS, Candidate
from mmfuse.search.validation import Views

from test_preset_fit import FAST, _table


def _trial(*selections: float) -> SimpleNamespace:
    first, *rest = [SimpleNamespace(scores={"selection": s}, resplits=[]) for s in selections]
    first.resplits = rest
    return first


def test_the_gain_is_paired_split_by_split_with_its_standard_error() -> None:
    gain, error = _gain(_trial(0.8, 0.7, 0.9), _trial(0.7, 0.7, 0.7))
    assert gain == pytest.approx(0.1)
    assert error == pytest.approx(0.1 / 3**0.5)  # std of (0.1, 0, 0.2) is 0.1
    assert _gain(_trial(0.6), _trial(0.5)) == pytest.approx((0.1, 0.0))


@pytest.fixture
def search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Search, object]:
    """A best-preset search on pretrained text features after its halving and a second split."""
    if BACKBONES["minilm"].missing():
        pytest.skip("minilm is not installed")
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    est = MultimodalClassifier(**{**FAST, "pretrained": True, "epochs": 2, "cache_dir": str(tmp_path)})
    table = est.read(_table(60, 5))
    pre, train, valid = est.prepared(table, "label", None)
    assert pre.pretrained["note"].frozen
    search = Search(est, PRESETS["best"], "classification", "accuracy", time.perf_counter(), None)
    search.prepared["default"] = Prepared(pre, train, valid, Views.build(valid, 0))
    search.run([Candidate("feature/concat md=0.3", "default",
                          {"level": "feature", "fusion": "concat", "modality_dropout": 0.3})])
    search.resplit(2)
    return search, table


def test_the_winner_is_tried_with_its_network_fine_tuned_on_every_split(search) -> None:
    search, table = search
    search.started -= 3600  # the search so far "took" an hour: fine-tuning has time
    try_finetuned(search, table, "label", None, splits=2)
    tuned = [t for t in search.trials if t.candidate.features == "finetune=note"]
    assert [t.candidate.name for t in tuned] == ["feature/concat md=0.3 finetune=note"]
    assert tuned[0].candidate.params["finetune"] == "note"
    assert not search.prepared["finetune=note"].pre.pretrained["note"].frozen
    assert len(tuned[0].resplits) == 1  # the second split too, the same records as the finalist's
    assert search.prepared["finetune=note"].valid.rows.tolist() == search.prepared["default"].valid.rows.tolist()
    kept = tuned[0] in search.finalists
    why = [s["why"] for s in search.skipped if s["name"] == tuned[0].candidate.name]
    assert kept != bool(why)  # a finalist, or shown with why it was not kept
    if why:  # trained and shown, but after the finalists and not chosen from
        assert "standard error" in why[0]
        from mmfuse.search.record import leaderboard_frame, search_record

        board = leaderboard_frame(search_record(search, search.best(), None, None))
        assert board["name"].iloc[0] != tuned[0].candidate.name
        assert board.set_index("name").loc[tuned[0].candidate.name, "dropped"] == why[0]


def test_without_a_pretrained_finalist_it_says_why_nothing_was_fine_tuned(search) -> None:
    search, table = search
    search.started -= 3600
    try_finetuned(search, table, "label", None, splits=3)  # no trial was judged on 3 splits
    assert not [t for t in search.trials if t.candidate.features.startswith("finetune=")]
    assert [(s["name"], s["trained"]) for s in search.skipped] == [("finetune=note", False)]
    assert "no candidate on frozen pretrained features among the finalists" in search.skipped[0]["why"]


def test_without_time_left_it_is_listed_and_not_trained(search) -> None:
    search, table = search
    search.deadline = time.perf_counter()
    try_finetuned(search, table, "label", None, splits=2)
    assert not [t for t in search.trials if t.candidate.features != "default"]
    assert search.skipped[-1] == {"name": "feature/concat md=0.3 finetune=note", "rung": 2, "why": "no time left",
                                  "trained": False}
    assert "finetune=note" not in search.prepared


def test_a_kept_fine_tuned_bag_saves_loads_and_predicts_the_same(search, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    import numpy as np

    from mmfuse import load
    from mmfuse.search import finetuning
    from mmfuse.search.halving import _adopt

    search, table = search
    search.started -= 3600
    monkeypatch.setattr(finetuning, "_gain", lambda tuned, base: (1.0, 0.0))  # it wins
    for t in search.finalists:  # and the frozen finalists lose
        t.scores["selection"] = -1.0
        for r in t.resplits:
            r.scores["selection"] = -1.0
    try_finetuned(search, table, "label", None, splits=2)
    est = search.est
    _adopt(est, search, [])
    assert est.search_["best_single"] == "feature/concat md=0.3 finetune=note" and est.search_["kept"] == "bag"
    assert not est.preprocessor_.pretrained["note"].frozen
    est.save(tmp_path / "model")
    test = _table(12, 9)
    np.testing.assert_allclose(load(tmp_path / "model", verbose=False).predict_proba(test), est.predict_proba(test),
                               atol=1e-5)
