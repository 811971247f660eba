"""The command line end to end through ``main(argv)`` on the 60-record demo dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from mmfuse.cli.commands import COMMANDS
from mmfuse.cli.main import main
from mmfuse.estimators.io import load
from mmfuse.fusion import list_fusions

FAST = [
    "--epochs",
    "2",
    "--dim",
    "16",
    "--threads",
    "1",
    "--features",
    "image,review,income,region",
]


@pytest.fixture(scope="module")
def model_dir(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model fitted once through the CLI (read-only for the tests below)."""
    out = tmp_path_factory.mktemp("cli") / "model"
    assert (
        main(["fit", str(demo_csv), "--target", "label", "--out", str(out), "--quiet", *FAST]) == 0
    )
    return out


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: mmfuse {command}" in out
    assert "examples:" in out
    assert f"mmfuse {command}" in out.split("examples:")[1]


def test_top_level_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    for command in COMMANDS:
        assert command.name in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("mmfuse ")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["fit", "data.csv"]) == 2  # --target and --out are required
    assert "required" in capsys.readouterr().err


def test_info_prints_kinds_and_modalities(
    demo_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(demo_csv.parent), "--target", "label"]) == 0
    out = capsys.readouterr().out
    assert f"{demo_csv}: 60 records, 11 columns" in out
    modalities = "audio (audio), image (image), review (text), tabular (tabular), video (video)"
    assert f"modalities: {modalities}\n" in out
    assert "target: 'label', task: classification" in out
    assert "negative" in out and "positive" in out
    lines = {
        line.split()[0]: line.split()[1]
        for line in out.splitlines()
        if line[:1].isalpha() and len(line.split()) > 2
    }
    assert lines["image"] == "image" and lines["review"] == "text" and lines["income"] == "numeric"
    assert (
        lines["region"] == "categorical" and lines["label"] == "target" and lines["id"] == "ignored"
    )


def test_info_with_kind_override(demo_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["info", str(demo_csv), "--kinds", "age=categorical,audio=ignore,video=ignore"]) == 0
    )
    out = capsys.readouterr().out
    assert "modalities: image (image), review (text), tabular (tabular)" in out


def test_fit_writes_the_model_directory(model_dir: Path) -> None:
    for name in (
        "config.json",
        "model.safetensors",
        "preprocess.json",
        "metrics.json",
        "history.csv",
    ):
        assert (model_dir / name).is_file(), name
    assert not (model_dir / "rejected.csv").exists()  # only with --on-bad-record skip
    assert not (model_dir / "checkpoint").exists()
    metrics = json.loads((model_dir / "metrics.json").read_text())
    for key in (
        "task",
        "level",
        "fusion",
        "modalities",
        "n_train",
        "n_valid",
        "train_seconds",
        "metrics",
    ):
        assert key in metrics, key
    assert metrics["task"] == "classification"
    assert (metrics["level"], metrics["fusion"]) == ("feature", "attention")
    assert metrics["modalities"] == {"image": "image", "review": "text", "tabular": "tabular"}
    assert (metrics["n_train"], metrics["n_valid"]) == (48, 12)
    assert metrics["train_seconds"] > 0
    assert {
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "roc_auc",
        "log_loss",
    } <= set(metrics["metrics"])
    history = pd.read_csv(model_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"train_loss", "valid_loss", "valid_accuracy", "seconds"} <= set(history.columns)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["schema"]["target"] == "label"
    assert config["model"]["fusion"] == "attention"


def test_fit_prints_metrics(
    demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    assert (
        main(
            ["fit", str(demo_csv), "--target", "label", "--out", str(out), "--level", "late", *FAST]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "validation metrics (12 records)" in captured.out
    assert f"model written to {out}" in captured.out
    assert "task: classification (inferred from column 'label'" in captured.err
    assert json.loads((out / "metrics.json").read_text())["level"] == "late"


def test_evaluate_json(
    model_dir: Path, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "metrics.json"
    assert main(["evaluate", str(model_dir), str(demo_csv), "--json", str(target)]) == 0
    written = json.loads(target.read_text())
    assert list(written) == ["metrics", "n_records", "n_scored", "n_rejected", "rejected", "distrusted"]
    assert (written["n_records"], written["n_scored"], written["n_rejected"]) == (60, 60, 0)
    assert set(written["distrusted"]) == set(load(model_dir).model_.modalities)  # a count per modality
    assert 0.0 <= written["metrics"]["accuracy"] <= 1.0
    assert f"metrics on {demo_csv}" in capsys.readouterr().out


def test_predict_one_row_per_input_row_in_order(
    model_dir: Path, demo_csv: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(demo_csv)
    shuffled = frame.sample(frac=1.0, random_state=0).drop(columns=["label", "score"])
    data = tmp_path / "data.csv"
    # Media paths are relative to the data file's folder: use absolute ones in the copy.
    for col in ("image", "audio", "video"):
        shuffled[col] = [v if pd.isna(v) else str(demo_csv.parent / v) for v in shuffled[col]]
    shuffled.to_csv(data, index=False)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(model_dir), str(data), "--out", str(out)]) == 0
    predictions = pd.read_csv(out, keep_default_na=False)
    assert len(predictions) == len(shuffled) == 60
    assert list(predictions["row"]) == list(range(60))
    assert {"row", "prediction", "proba_negative", "proba_positive", "error"} <= set(
        predictions.columns
    )
    assert set(predictions["prediction"]) <= {"negative", "positive"}
    assert (predictions["error"] == "").all()
    # Same order: the unshuffled file gives the same per-record probabilities, permuted.
    original = tmp_path / "original.csv"
    assert main(["predict", str(model_dir), str(demo_csv), "--out", str(original)]) == 0
    by_id = pd.read_csv(original).set_index(frame["id"])["proba_positive"]
    expected = by_id.loc[shuffled["id"]].to_numpy()
    assert predictions["proba_positive"].to_numpy() == pytest.approx(expected, rel=1e-5)


def test_predict_with_bad_records_marks_them(
    model_dir: Path, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(demo_csv).head(5)
    frame["image"] = [str(demo_csv.parent / v) if isinstance(v, str) else v for v in frame["image"]]
    frame.loc[2, "image"] = str(tmp_path / "gone.png")
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(model_dir), str(data), "--out", str(out)]) == 2
    assert "row 2, column 'image': file not found" in capsys.readouterr().err
    assert not out.exists()
    assert (
        main(["predict", str(model_dir), str(data), "--out", str(out), "--on-bad-record", "skip"])
        == 0
    )
    predictions = pd.read_csv(out, keep_default_na=False)
    assert list(predictions["row"]) == [0, 1, 2, 3, 4]
    assert (
        predictions.loc[2, "prediction"] == "" and "file not found" in predictions.loc[2, "error"]
    )
    assert (predictions.drop(index=2)["error"] == "").all()


def test_list_fusions_and_encoders(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "fusions"]) == 0
    out = capsys.readouterr().out
    for name in list_fusions():
        assert name in out
    assert re.search(r"early_concat\s+early", out) and "mean" in out
    assert main(["list", "encoders"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[:3] for line in out.splitlines()[2:]]
    assert ["image", "cnn", "default"] in rows and ["text", "transformer"] in [r[:2] for r in rows]
    assert ["tabular", "raw", "early"] in rows
    assert main(["list", "models"]) == 2


def test_resume_on_absent_and_on_finished_checkpoint(demo_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    args = [
        "fit",
        str(demo_csv),
        "--target",
        "label",
        "--out",
        str(out),
        "--quiet",
        "--resume",
        *FAST,
    ]
    assert main(args) == 0  # nothing to resume from: trains from scratch
    first = json.loads((out / "metrics.json").read_text())["metrics"]
    assert main(args) == 0  # a finished model: the same seed gives the same model again
    assert json.loads((out / "metrics.json").read_text())["metrics"] == first


def test_resume_after_an_interruption(
    demo_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mmfuse.training import trainer as trainer_module

    def fit(out: Path, *extra: str) -> int:
        args = [
            "fit",
            str(demo_csv),
            "--target",
            "label",
            "--out",
            str(out),
            "--quiet",
            "--patience",
            "0",
        ]
        return main([*args, *FAST, "--epochs", "3", *extra])

    assert fit(tmp_path / "full") == 0
    real_save = trainer_module.save_checkpoint

    def interrupt_after_epoch_1(folder, model, best, optimizer, state):
        real_save(folder, model, best, optimizer, state)
        if state["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", interrupt_after_epoch_1)
    assert fit(tmp_path / "model") == 130
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.undo()
    assert fit(tmp_path / "model", "--resume") == 0
    history = pd.read_csv(tmp_path / "model" / "history.csv").drop(columns="seconds")
    full_history = pd.read_csv(tmp_path / "full" / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(history, full_history)
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())["metrics"]
    assert metrics == json.loads((tmp_path / "full" / "metrics.json").read_text())["metrics"]


def test_regression_from_the_command_line(demo_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert (
        main(["fit", str(demo_csv), "--target", "score", "--out", str(out), "--quiet", *FAST]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "regression"
    assert set(metrics["metrics"]) == {"mae", "rmse", "r2", "pearson"}
    predictions = tmp_path / "p.csv"
    assert main(["predict", str(out), str(demo_csv), "--out", str(predictions)]) == 0
    assert pd.read_csv(predictions)["prediction"].notna().all()


def test_data_errors_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path / "absent.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data file not found") and "Traceback" not in err
    assert main(["evaluate", str(tmp_path), str(tmp_path / "x.csv")]) == 2
    assert "is not an mmfuse model directory" in capsys.readouterr().err


def test_explain_writes_contributions_samples_and_correlation(
    model_dir: Path, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "explained"
    assert main(["explain", str(model_dir), str(demo_csv), "--out", str(out), "--sample", "3"]) == 0
    printed = capsys.readouterr().out
    assert "mean |Shapley|" in printed and "linear CKA" in printed
    summary = json.loads((out / "contributions.json").read_text())
    assert set(summary["modalities"]) == {"image", "review", "tabular"}
    for name in ("contributions.png", "correlation.csv", "correlation.png", "samples/row_3.json"):
        assert (out / name).exists(), name
    pairs = pd.read_csv(out / "correlation.csv")
    assert len(pairs) == 3  # image-review, image-tabular, review-tabular


def test_explain_unknown_sample_row_exits_2(
    model_dir: Path, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["explain", str(model_dir), str(demo_csv), "--out", str(tmp_path), "--sample", "9999"])
    assert code == 2
    err = capsys.readouterr().err
    assert "9999" in err and "Traceback" not in err


def test_evaluate_correlation_and_robustness(
    model_dir: Path, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    args = ["evaluate", str(model_dir), str(demo_csv), "--correlation", "--robustness", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "inter-modal correlation" in printed and "robustness (accuracy)" in printed
    curves = pd.read_csv(out / "robustness.csv")
    assert set(curves["modality"]) == {"image", "review", "tabular"}
    for name in ("correlation.png", "robustness.png", "robustness_summary.csv"):
        assert (out / name).exists(), name


def test_write_predictions_copies_identifier_columns(tmp_path: Path) -> None:
    from mmfuse.cli.report import write_predictions
    from mmfuse.data.preprocess import Rejection
    from mmfuse.data.readers import read_table

    table = read_table(pd.DataFrame({"id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]}))
    frame = pd.DataFrame({"row": [0, 2], "prediction": ["yes", "no"]})
    out = tmp_path / "p.csv"
    assert write_predictions(out, table, frame, [Rejection(1, "x", "bad")], ["id"]) == 3
    written = pd.read_csv(out, keep_default_na=False)
    assert list(written.columns) == ["row", "id", "prediction", "error"]
    assert list(written["id"]) == ["a", "b", "c"]
    assert list(written["prediction"]) == ["yes", "", "no"]
    assert list(written["error"]) == ["", "column 'x': bad", ""]
