"""Summaries learned from importance labels: segment labels, fit / evaluate / summarize --model
through the CLI, and clear messages for bad label tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.cli.main import main
from mmfuse.datasets.summary_videos import make_summary_videos
from mmfuse.summarize.shots import split_long
from mmfuse.summarize.supervised import _on_grid, segment_labels

pytest.importorskip("scenedetect")


def test_segment_labels_are_time_weighted_means_of_the_annotations() -> None:
    shots = split_long(np.array([[0.0, 4.0], [4.0, 10.0]]), 10.0, 10.0, 25.0)
    notes = pd.DataFrame({"start": [0.0, 3.0, 6.0], "end": [3.0, 6.0, 8.0], "score": [1.0, 0.0, 0.5]})
    # segment [0, 4): 3 s at 1.0 and 1 s at 0.0 -> 0.75; [4, 10): 2 s at 0.0, 2 s at 0.5, 2 s unannotated -> 0.25
    np.testing.assert_allclose(segment_labels(shots, notes, "score"), [0.75, 0.25])
    far = pd.DataFrame({"start": [20.0], "end": [21.0], "score": [1.0]})
    assert np.isnan(segment_labels(shots, far, "score")).all()


def test_per_frame_labels_give_the_per_shot_labels() -> None:
    shots = split_long(np.array([[0.0, 4.0], [4.0, 10.0]]), 10.0, 10.0, 25.0)
    per_shot = pd.DataFrame({"start": [0.0, 4.0], "end": [4.0, 10.0], "score": [0.8, 0.1]})
    t = np.arange(250) / 25  # one row per frame at 25 fps, shuffled
    per_frame = pd.DataFrame({"start": t, "end": t + 1 / 25, "score": np.where(t < 4, 0.8, 0.1)}).sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(segment_labels(shots, per_frame, "score"), segment_labels(shots, per_shot, "score"))
    np.testing.assert_allclose(segment_labels(shots, per_shot, "score"), [0.8, 0.1])


def test_overlapping_annotations_count_once() -> None:
    shots = split_long(np.array([[0.0, 4.0]]), 10.0, 4.0, 25.0)
    notes = pd.DataFrame({"start": [0.0, 1.0], "end": [2.0, 4.0], "score": [1.0, 0.0]})
    # the later stretch takes the overlap: [0, 1) at 1.0, [1, 4) at 0.0 -> (1 * 1 + 3 * 0) / 4
    np.testing.assert_allclose(segment_labels(shots, notes, "score"), [0.25])


def test_values_on_the_evaluation_grid() -> None:
    grid = (np.arange(6) + 0.5) / 2  # 0.25, 0.75, ..., 2.75
    out = _on_grid(grid, np.array([[0.0, 1.0], [2.0, 2.5]]), np.array([3.0, 7.0]))
    np.testing.assert_array_equal(out, [3, 3, 0, 0, 7, 0])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("supervised")
    train, test = make_summary_videos(root / "train", 3, seed=5), make_summary_videos(root / "test", 1, seed=6)
    assert main(["fit", str(train / "shots.csv"), "--task", "summarization", "--target", "importance",
                 "--out", str(root / "model"), "--epochs", "40", "--threads", "1", "--quiet"]) == 0
    return root / "model", test


def test_fit_writes_a_summarization_model(fitted: tuple[Path, Path]) -> None:
    model, _ = fitted
    spec = json.loads((model / "summarization.json").read_text())
    assert spec["target"] == "importance" and spec["videos"] == 3 and spec["validation_videos"] == ["videos/video_0.mp4"]
    assert (model / "model.safetensors").exists()


def test_evaluate_scores_summaries_of_new_videos(fitted: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model, test = fitted
    assert main(["evaluate", str(model), str(test / "shots.csv"), "--json", str(tmp_path / "m.json")]) == 0
    printed = capsys.readouterr().out
    assert "summaries at 15 % (1 videos)" in printed
    result = json.loads((tmp_path / "m.json").read_text())
    assert set(result["metrics"]) == {"fscore", "kendall_tau", "spearman_rho"}
    assert result["metrics"]["fscore"] >= 0.8  # the events: loud and bright, learned from three videos
    assert result["metrics"]["kendall_tau"] > 0.3


def test_summarize_with_the_model(fitted: tuple[Path, Path], tmp_path: Path) -> None:
    model, test = fitted
    assert main(["summarize", str(test / "videos/video_0.mp4"), "--model", str(model), "--out", str(tmp_path),
                 "--no-video", "--quiet"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["scoring"] == "model" and summary["selected"] >= 1


def test_a_folder_that_is_not_a_summarizer_is_named(tmp_path: Path, fitted: tuple[Path, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, test = fitted
    (tmp_path / "not_a_model").mkdir()
    assert main(["summarize", str(test / "videos/video_0.mp4"), "--model", str(tmp_path / "not_a_model"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "is not a summarization model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("frame", "match"),
    [({"video": ["a.mp4"], "start": [0.0], "score": [1.0]}, "missing: end"),
     ({"video": ["a.mp4"], "start": ["soon"], "end": [1.0], "score": [1.0]}, "'start' must hold numbers"),
     ({"video": ["a.mp4"], "start": [2.0], "end": [1.0], "score": [1.0]}, "end before they start"),
     ({"video": ["gone.mp4"], "start": [0.0], "end": [1.0], "score": [1.0]}, "video not found")],
)
def test_bad_label_tables_are_refused(tmp_path: Path, frame: dict, match: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame(frame).to_csv(tmp_path / "labels.csv", index=False)
    assert main(["fit", str(tmp_path / "labels.csv"), "--task", "summarization", "--target", "score",
                 "--out", str(tmp_path / "m")]) == 2
    assert match in capsys.readouterr().err


def test_explain_names_what_to_run_instead(fitted: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    model, test = fitted
    assert main(["explain", str(model), str(test / "shots.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "is a summarization model" in capsys.readouterr().err
