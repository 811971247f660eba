"""``mmfuse.compare``: the grid, the leaderboard, the output files, the recommendation, the CLI.

Runs on the shared 60-record demo dataset with one or two epochs and two folds.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import mmfuse
from mmfuse.cli.main import main
from mmfuse.errors import MmfuseError
from mmfuse.estimators.compare import candidates, parse_fusions
from mmfuse.estimators.compare_report import recommend, recommendation_text
from mmfuse.fusion import fusion_level, list_fusions

FEATURES = ["image", "review", "income", "region"]
MODALITIES = ("image", "review", "tabular")
FAST: dict[str, Any] = {"epochs": 2, "dim": 16, "num_threads": 1, "features": FEATURES, "seed": 0}
FUSIONS = "concat,attention,early_concat,mean,weighted,stacking,vote"
LATE = ["mean", "weighted", "stacking", "vote"]
COLUMNS = [
    "name", "group", "level", "fusion", "modalities", "accuracy_mean", "accuracy_std",
    "f1_macro_mean", "f1_macro_std", "train_seconds", "parameters", "peak_memory_mb", "folds",
]
METRICS = ["accuracy_mean", "accuracy_std", "f1_macro_mean", "f1_macro_std"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """One classification comparison with written outputs (read-only for the tests below)."""
    out = tmp_path_factory.mktemp("compare") / "out"
    board = mmfuse.compare(
        demo_csv, "label", fusions=FUSIONS, folds=2, out_dir=out, verbose=False, **FAST
    )
    return board, out


# ------------------------------------------------------------------------ grid
def test_parse_fusions() -> None:
    assert parse_fusions("all") == list_fusions()
    assert parse_fusions(None) == list_fusions()
    assert parse_fusions(" concat , mean,concat") == ["concat", "mean"]
    assert parse_fusions(["mean", "vote"]) == ["mean", "vote"]
    with pytest.raises(MmfuseError, match="unknown fusion 'nope'") as info:
        parse_fusions("concat,nope")
    for name in list_fusions():
        assert name in str(info.value)


def test_candidates_grid() -> None:
    grid = candidates(MODALITIES, ["concat", "early_concat", "mean"])
    assert [c.name for c in grid] == [
        "image only", "review only", "tabular only", "concat", "early_concat", "mean"
    ]
    for c, m in zip(grid[:3], MODALITIES):
        assert (c.group, c.level, c.fusion, c.modalities) == ("unimodal", "feature", "concat", (m,))
    assert [c.level for c in grid[3:]] == ["feature", "early", "late"]
    assert all(c.group == "fused" and c.modalities == MODALITIES for c in grid[3:])
    everything = candidates(MODALITIES, list_fusions())
    assert all(c.level == fusion_level(c.fusion) for c in everything if c.group == "fused")
    assert [c.group for c in candidates(MODALITIES, ["mean"], unimodal=False)] == ["fused"]


# ------------------------------------------------------------------ leaderboard
def test_leaderboard_columns_rows_and_order(run: tuple[pd.DataFrame, Path]) -> None:
    board, _ = run
    assert list(board.columns) == COLUMNS
    expected = {f"{m} only" for m in MODALITIES} | set(FUSIONS.split(","))
    assert sorted(board["name"]) == sorted(expected) and len(board) == len(expected)
    assert (board["folds"] == 2).all()
    assert board["accuracy_mean"].is_monotonic_decreasing
    assert board["accuracy_mean"].between(0, 1).all() and (board["accuracy_std"] >= 0).all()
    assert (board["parameters"] > 0).all() and (board["train_seconds"] >= 0).all()
    levels = dict(zip(board["name"], board["level"]))
    assert levels["concat"] == "feature" and levels["early_concat"] == "early"
    assert levels["vote"] == "late"
    assert set(board.loc[board["group"] == "fused", "modalities"]) == {"+".join(MODALITIES)}


def test_same_seed_same_numbers(demo_csv: Path, run: tuple[pd.DataFrame, Path]) -> None:
    board, _ = run
    again = mmfuse.compare(demo_csv, "label", fusions=FUSIONS, folds=2, verbose=False, **FAST)
    columns = ["name", *METRICS, "parameters"]
    pd.testing.assert_frame_equal(again[columns], board[columns])


def test_decision_level_operators_share_the_per_modality_models(
    run: tuple[pd.DataFrame, Path],
) -> None:
    board, out = run
    late = board[board["name"].isin(LATE)]
    assert len(late) == len(LATE) and (late["level"] == "late").all()
    assert late["parameters"].nunique() == 1
    assert late["peak_memory_mb"].nunique() == 1
    folds = pd.read_csv(out / "folds.csv")
    for _, fold in folds[folds["name"].isin(LATE)].groupby("fold"):
        assert fold["parameters"].nunique() == 1 and fold["epochs"].nunique() == 1


def test_output_files(run: tuple[pd.DataFrame, Path]) -> None:
    board, out = run
    files = {p.name for p in out.iterdir()}
    assert files == {"leaderboard.csv", "folds.csv", "leaderboard.png", "report.html"}
    saved = pd.read_csv(out / "leaderboard.csv")
    assert list(saved.columns) == COLUMNS and list(saved["name"]) == list(board["name"])
    folds = pd.read_csv(out / "folds.csv")
    assert len(folds) == 2 * len(board)
    assert sorted(folds["fold"].unique()) == [0, 1]
    assert folds.groupby("name").size().eq(2).all()
    assert (out / "leaderboard.png").read_bytes().startswith(PNG_MAGIC)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Recommendation" in page
    for name in board["name"]:
        assert name in page
    assert "data:image/png;base64," in page
    encoded = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(encoded).startswith(PNG_MAGIC)
    text = page.replace(encoded, "")  # base64 may spell anything
    assert "http" not in text.lower() and "<script" not in text and "<link" not in text


def test_regression(demo_csv: Path) -> None:
    board = mmfuse.compare(
        demo_csv, "score", fusions="concat,mean,weighted", folds=2, verbose=False,
        **{**FAST, "epochs": 1},
    )
    assert list(board.columns[5:9]) == ["rmse_mean", "rmse_std", "r2_mean", "r2_std"]
    assert "label" not in ",".join(board["modalities"])
    assert len(board) == 6 and (board["folds"] == 2).all()
    assert board["rmse_mean"].is_monotonic_increasing and (board["rmse_mean"] > 0).all()
    assert board.loc[board["name"].isin(["mean", "weighted"]), "parameters"].nunique() == 1


def test_rare_class_is_stratified_and_a_single_record_class_is_refused(demo_csv: Path) -> None:
    frame = pd.read_csv(demo_csv)
    frame.loc[[0, 1], "label"] = "rare"  # fewer records than folds: still one per test part at most
    rare = demo_csv.parent / "rare.csv"  # beside the media files, which the CSV refers to
    frame.to_csv(rare, index=False)
    try:
        board = mmfuse.compare(rare, "label", fusions="mean", folds=3, verbose=False,
                               **{**FAST, "epochs": 1, "features": ["review", "income"]})
        assert (board["folds"] == 3).all()
        frame.loc[1, "label"] = "negative"
        frame.to_csv(rare, index=False)
        with pytest.raises(MmfuseError, match="class 'rare' of 'label' has a single record"):
            mmfuse.compare(rare, "label", fusions="mean", folds=2, verbose=False, **FAST)
    finally:
        rare.unlink()


def test_uncertain_gain_is_flagged() -> None:
    board = _board(
        [
            ("concat", "fused", "feature", 0.80, 0.05, 100, 1.0),
            ("image only", "unimodal", "feature", 0.78, 0.01, 10, 0.1),
        ],
        "accuracy",
    )
    text = recommendation_text(recommend(board, "classification"))
    assert "improves on it (accuracy +0.020), less than the fold-to-fold spread (± 0.050)" in text


def test_api_errors(demo_csv: Path) -> None:
    with pytest.raises(MmfuseError, match="at least 2"):
        mmfuse.compare(demo_csv, "label", folds=1, verbose=False)
    with pytest.raises(MmfuseError, match="unknown target column 'nope'"):
        mmfuse.compare(demo_csv, "nope", folds=2, verbose=False)
    with pytest.raises(MmfuseError, match="unknown fusion"):
        mmfuse.compare(demo_csv, "label", fusions="concat,nope", folds=2, verbose=False, **FAST)
    with pytest.raises(MmfuseError, match="fusions="):
        mmfuse.compare(demo_csv, "label", folds=2, verbose=False, fusion="mean")


# ---------------------------------------------------------------- recommendation
Row = tuple[str, str, str, float, float, int, float]


def _board(rows: list[Row], metric: str) -> pd.DataFrame:
    """A hand-made leaderboard with the columns that recommend() reads."""
    names = ["name", "group", "level", f"{metric}_mean", f"{metric}_std"]
    return pd.DataFrame(rows, columns=[*names, "parameters", "train_seconds"])


def test_recommend_best_simplest_and_gain() -> None:
    board = _board(
        [
            ("attention", "fused", "feature", 0.90, 0.03, 5000, 2.0),
            ("concat", "fused", "feature", 0.88, 0.01, 3000, 1.0),
            ("mean", "fused", "late", 0.87, 0.02, 1000, 1.0),  # within 0.03 of the best: simplest
            ("early_concat", "fused", "early", 0.80, 0.01, 10, 0.1),  # fewer parameters, too far
            ("image only", "unimodal", "feature", 0.95, 0.01, 100, 0.1),  # unimodal: never "best"
            ("review only", "unimodal", "feature", 0.70, 0.01, 100, 0.1),
        ],
        "accuracy",
    )
    rec = recommend(board, "classification")
    assert rec["metric"] == "accuracy"
    assert rec["best"]["name"] == "attention" and rec["simplest"]["name"] == "mean"
    assert rec["best_unimodal"]["name"] == "image only"
    assert rec["gain"] == pytest.approx(-0.05)
    text = recommendation_text(rec)
    assert "attention" in text and "mean" in text and "image only" in text
    assert "fusion does not help here (accuracy -0.050)" in text


def test_recommend_ties_on_parameters_go_to_the_faster() -> None:
    board = _board(
        [
            ("a", "fused", "feature", 0.80, 0.05, 100, 3.0),
            ("b", "fused", "late", 0.78, 0.01, 100, 1.0),
            ("c only", "unimodal", "feature", 0.60, 0.01, 10, 0.1),
        ],
        "accuracy",
    )
    rec = recommend(board, "classification")
    assert rec["best"]["name"] == "a" and rec["simplest"]["name"] == "b"
    assert rec["gain"] == pytest.approx(0.20)
    assert "fusion improves on it (accuracy +0.200)." in recommendation_text(rec)


def test_recommend_best_is_simplest() -> None:
    board = _board(
        [
            ("mean", "fused", "late", 0.9, 0.0, 10, 1.0),
            ("concat", "fused", "feature", 0.8, 0.0, 5, 1.0),
        ],
        "accuracy",
    )
    rec = recommend(board, "classification")
    assert rec["best"]["name"] == rec["simplest"]["name"] == "mean"
    assert "best_unimodal" not in rec and "gain" not in rec
    assert "No simpler operator" in recommendation_text(rec)


def test_recommend_lower_is_better_for_rmse() -> None:
    board = _board(
        [
            ("concat", "fused", "feature", 0.50, 0.08, 5000, 1.0),
            ("mean", "fused", "late", 0.55, 0.02, 900, 1.0),  # 0.55 <= 0.50 + 0.08
            ("vote", "fused", "late", 0.70, 0.01, 10, 1.0),  # too far
            ("image only", "unimodal", "feature", 0.80, 0.05, 100, 0.1),
            ("review only", "unimodal", "feature", 0.60, 0.05, 100, 0.1),
        ],
        "rmse",
    )
    rec = recommend(board, "regression")
    assert rec["metric"] == "rmse"
    assert rec["best"]["name"] == "concat" and rec["simplest"]["name"] == "mean"
    assert rec["best_unimodal"]["name"] == "review only"
    assert rec["gain"] == pytest.approx(0.10)  # positive: fusion lowers the error by 0.10
    text = recommendation_text(rec)
    assert "fusion improves on it (rmse -0.100)" in text and "uncertain" not in text


def test_recommend_without_fusion() -> None:
    board = _board([("image only", "unimodal", "feature", 0.7, 0.0, 10, 1.0)], "accuracy")
    rec = recommend(board, "classification")
    assert "best" not in rec and rec["best_unimodal"]["name"] == "image only"
    assert recommendation_text(rec) == "No fusion operator was compared."


# ----------------------------------------------------------------------- CLI
CLI_FAST = ["--folds", "2", "--epochs", "1", "--threads", "1", "--features", ",".join(FEATURES)]


def test_cli_compare(demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    argv = [
        "compare", str(demo_csv), "--target", "label", "--out", str(out),
        "--fusions", "concat,mean", *CLI_FAST,
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    header = ["model", "level", "accuracy", "mean", "std", "seconds", "parameters"]
    assert lines[0].split() == header
    shown = {line.split("  ")[0].strip() for line in lines[2:7]}
    assert shown == {"image only", "review only", "tabular only", "concat", "mean"}
    assert "Best: " in captured.out and "Best single modality: " in captured.out
    assert str(out / "report.html") in captured.out
    assert "[10/10] fold 2/2" in captured.err and "Traceback" not in captured.err
    assert len(pd.read_csv(out / "leaderboard.csv")) == 5

    assert main([*argv, "--quiet", "--no-unimodal"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "only" not in captured.out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--folds", "1"], "error: --folds must be at least 2, got 1"),
        (["--fusions", "concat,nope"], "error: unknown fusion 'nope'; choose one of: "),
        (["--target", "nope"], "unknown target column 'nope'"),
    ],
)
def test_cli_compare_errors_exit_2(
    demo_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", str(demo_csv), "--target", "label", "--out", str(out), *CLI_FAST, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_explain_sections_in_the_report(demo_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    mmfuse.compare(
        demo_csv, "label", fusions="concat,mean", folds=2, out_dir=out, verbose=False,
        explain=True, **FAST,
    )  # fmt: skip
    page = (out / "report.html").read_text()
    assert "Which modality drives each model" in page and "Robustness:" in page
    contributions = pd.read_csv(out / "explain" / "contributions.csv")
    assert set(contributions["model"]) == {"concat", "mean"}
    assert set(contributions.columns) == {"model", "image", "review", "tabular"}
    for name in ("correlation.csv", "correlation.png", "robustness.csv", "robustness.png"):
        assert (out / "explain" / name).exists(), name
