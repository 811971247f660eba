"""A streamed fit (records prepared to disk a chunk at a time) equals the in-memory fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mmfuse
from mmfuse import MultimodalClassifier, MultimodalRegressor
from mmfuse.errors import MmfuseError
from mmfuse.estimators import streaming
from mmfuse.types import InputSpec

FAST = {"epochs": 2, "dim": 16, "verbose": False, "num_threads": 1,
        "features": ["image", "review", "income", "region"]}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 records per chunk (the real floor is 256), so the 60 demo records span 4 shards."""
    monkeypatch.setattr(streaming, "chunk_rows", lambda specs: 16)


def _history(est: object) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in est.history_]  # type: ignore[attr-defined]


def test_streamed_fit_is_identical(demo_csv: Path, small_chunks: None, tmp_path: Path) -> None:
    memory = MultimodalClassifier(**FAST).fit(demo_csv, target="label")
    streamed = MultimodalClassifier(**FAST, stream=True, store_dir=str(tmp_path / "store"))
    streamed.fit(demo_csv, target="label")
    a, b = memory.model_.state_dict(), streamed.model_.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _history(memory) == _history(streamed) and memory.metrics_ == streamed.metrics_
    assert (memory.n_train_, memory.n_valid_) == (streamed.n_train_, streamed.n_valid_) == (48, 12)
    assert list((tmp_path / "store").iterdir()) == []  # the records are deleted after the fit


def test_streamed_evaluate_and_predict_are_identical(demo_csv: Path, small_chunks: None) -> None:
    clf = MultimodalClassifier(**FAST).fit(demo_csv, target="label")
    memory = (clf.evaluate(demo_csv), clf.predict_proba(demo_csv), clf.predict_frame(demo_csv)[0])
    clf.set_params(stream=True)
    streamed = (clf.evaluate(demo_csv), clf.predict_proba(demo_csv), clf.predict_frame(demo_csv)[0])
    assert memory[0] == streamed[0]
    np.testing.assert_array_equal(memory[1], streamed[1])
    pd.testing.assert_frame_equal(memory[2], streamed[2])


def test_streamed_fit_with_validation_records(demo_csv: Path, small_chunks: None) -> None:
    frame = mmfuse.read_table(demo_csv).df
    train = mmfuse.read_table(frame.iloc[:40], base_dir=demo_csv.parent)
    valid = mmfuse.read_table(frame.iloc[40:], base_dir=demo_csv.parent)
    fits = [MultimodalRegressor(**FAST, stream=s).fit(train, target="score", valid=valid) for s in (False, True)]
    assert fits[0].metrics_ == fits[1].metrics_ and fits[1].n_valid_ == 20


def test_bad_records_are_handled_alike(demo_csv: Path, small_chunks: None) -> None:
    frame = mmfuse.read_table(demo_csv).df.copy()
    rows = frame.index[frame["image"].notna()][[1, 30]]  # in two different chunks
    frame.loc[rows, "image"] = "images/does-not-exist.png"
    table = mmfuse.read_table(frame, base_dir=demo_csv.parent)
    messages = []
    for stream in (False, True):
        with pytest.raises(MmfuseError) as err:
            MultimodalClassifier(**FAST, stream=stream).fit(table, target="label")
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "2 bad value(s) in 2 record(s)" in messages[0]
    fits = [MultimodalClassifier(**FAST, stream=s, on_bad_record="skip").fit(table, target="label")
            for s in (False, True)]
    assert [r.row for r in fits[0].rejected_] == [r.row for r in fits[1].rejected_] == sorted(rows.tolist())
    assert fits[0].metrics_ == fits[1].metrics_


def test_fit_streams_by_itself_when_memory_is_short(
    demo_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(streaming, "available_memory", lambda: 2**20)  # 1 MB free
    MultimodalClassifier(**{**FAST, "verbose": True}).fit(demo_csv, target="label")
    err = capsys.readouterr().err
    assert "streaming: the prepared records take about" in err and "1 MB of memory is available" in err


def test_decision_and_sizes() -> None:
    specs = {"image": InputSpec("image", (3, 4, 4)), "text": InputSpec("text", (10,))}
    assert streaming.record_bytes(specs) == 3 * 4 * 4 * 4 + 10 * 8  # float32 pixels, int64 tokens
    assert streaming.chunk_rows(specs) == 8192  # 272-byte records: capped by count
    assert streaming.chunk_rows({"v": InputSpec("video", (8, 3, 224, 224))}) == 256  # 4.8 MB records: floor
    assert not streaming.should_stream(100, specs, forced=False, verbose=False)


def test_preset_and_stream_are_refused(demo_csv: Path) -> None:
    with pytest.raises(MmfuseError, match="--preset keeps its records in memory"):
        MultimodalClassifier(**FAST, preset="fast", stream=True).fit(demo_csv, target="label")


def test_streamed_compare_equals_the_in_memory_one(demo_csv: Path, small_chunks: None, tmp_path: Path) -> None:
    from mmfuse.estimators.compare import compare

    options = {"fusions": "concat,mean", "folds": 2, "epochs": 2, "dim": 16, "num_threads": 1, "verbose": False,
               "features": ["image", "review", "income"]}
    memory = compare(demo_csv, target="label", **options)
    streamed = compare(demo_csv, target="label", stream=True, store_dir=str(tmp_path / "store"),
                       out_dir=tmp_path / "out", explain=True, **options)
    columns = ["name", "accuracy_mean", "accuracy_std", "f1_macro_mean"]
    pd.testing.assert_frame_equal(memory[columns], streamed[columns])
    assert list((tmp_path / "store").iterdir()) == []  # the folds' records are deleted afterwards
    assert (tmp_path / "out" / "report.html").exists()