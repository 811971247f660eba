"""A second sweep of bad input: options out of range, odd files, outputs that would overwrite
the inputs, and commands given a model of the wrong kind. Each was an "unexpected failure"
(exit 1) or a silent exit 0 before."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from reliability_harness import FAST, expect_user_error, snapshot, write_csv

N = 24


def _frame(n: int = N) -> pd.DataFrame:
    """A text, a number, a category and a two-class label: no media, so fits take a second."""
    return pd.DataFrame(
        {
            "note": [f"note {i} is {'good' if i % 2 else 'bad'}" for i in range(n)],
            "price": [float(i) for i in range(n)],
            "colour": ["red", "green", "blue"] * (n // 3),
            "label": ["yes", "no"] * (n // 2),
        }
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_csv(_frame(), tmp_path / "data")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model directory, data CSV) of a tiny text + tabular classifier (read-only)."""
    from mmfuse.cli.main import main

    root = tmp_path_factory.mktemp("sweep")
    csv = write_csv(_frame(), root / "data")
    assert main(["fit", str(csv), "--target", "label", "--out", str(root / "model"), *FAST]) == 0
    return root / "model", csv


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model directory, data CSV) of a tiny text <-> text retrieval model (read-only)."""
    from mmfuse.cli.main import main

    root = tmp_path_factory.mktemp("sweep-retrieval")
    pairs = pd.DataFrame({"query": [f"query {i} about thing {i % 5}" for i in range(N)],
                          "doc": [f"document {i} on thing {i % 5}" for i in range(N)]})
    csv = write_csv(pairs, root / "data")
    fit = ["fit", str(csv), "--task", "retrieval", "--pair", "query,doc", "--out", str(root / "model"), *FAST]
    assert main(fit) == 0
    return root / "model", csv


# ---------------------------------------------------------------------- compare
@pytest.mark.parametrize(
    ("target", "folds", "message"),
    [("label", "13", "--folds 13 is more than the 12 records of the largest class of 'label'; use --folds 12"),
     ("price", "50", "--folds 50 is more than its 24 records; use --folds 24 or fewer")],
)
def test_compare_with_more_folds_than_records(cli, data: Path, tmp_path: Path, target: str, folds: str,
                                              message: str) -> None:
    result = cli("compare", data, "--target", target, "--folds", folds, "--out", tmp_path / "c", *FAST)
    expect_user_error(result, str(data), message)


# ------------------------------------------------------------------------ files
def test_gzipped_csv_named_csv(cli, tmp_path: Path) -> None:
    path = tmp_path / "data" / "data.csv"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(_frame().to_csv(index=False).encode()))
    expect_user_error(cli("info", path), str(path), "the name of column 1 is not UTF-8 text", "Decompress it")


def test_jsonl_key_that_is_not_utf8(cli, tmp_path: Path) -> None:
    path = tmp_path / "data" / "data.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'{"\xff": 1, "label": "a"}\n{"\xff": 2, "label": "b"}\n')
    expect_user_error(cli("info", path), str(path), "the name of column 1 is not UTF-8 text")


def test_json_array_instead_of_json_lines(cli, tmp_path: Path) -> None:
    path = tmp_path / "data" / "data.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_frame().to_dict("records")))
    expect_user_error(cli("info", path), str(path), "line 1 is not a JSON object", "one {...} object per line")


def test_table_of_only_the_target(cli, tmp_path: Path) -> None:
    path = write_csv(_frame()[["label"]], tmp_path / "data")
    result = cli("fit", path, "--target", "label", "--out", tmp_path / "m", *FAST)
    expect_user_error(result, str(path), "no columns besides the target; add the columns to learn from")


# ---------------------------------------------------------------------- options
@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_cache_max_gb_out_of_range(cli, tmp_path: Path, value: str) -> None:
    for action in ("info", "prune"):
        result = cli("cache", action, f"--max-gb={value}", "--cache-dir", tmp_path / "cache")
        expect_user_error(result, "--max-gb must be a finite size in GB, 0 or more")


@pytest.mark.parametrize(("option", "value"), [("--lr", "nan"), ("--lr", "inf"), ("--weight-decay", "nan")])
def test_non_finite_training_setting(cli, data: Path, tmp_path: Path, option: str, value: str) -> None:
    result = cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST, option, value)
    expect_user_error(result, f"{option[2:].replace('-', '_')}={value}", "none may be negative, infinite or NaN")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "between 0 and 1"), ("1", "between 0 and 1"), ("nan", "between 0 and 1"),
     ("0.99", "holds out all 24 records, leaving none to train on")],
)
def test_valid_fraction_out_of_range(cli, data: Path, tmp_path: Path, value: str, message: str) -> None:
    result = cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST, "--valid-fraction", value)
    expect_user_error(result, f"--valid-fraction {float(value)}", message)


def test_retrieval_valid_fraction_leaving_nothing(cli, retriever: tuple[Path, Path], tmp_path: Path) -> None:
    fit = ["fit", retriever[1], "--task", "retrieval", "--pair", "query,doc", "--out", tmp_path / "m"]
    expect_user_error(cli(*fit, *FAST, "--valid-fraction", "0.99"), "leaving none to train on")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--kinds", "price=numeric,price=text", "--kinds: 'price' is given twice ('numeric' and 'text')"),
     ("--encoder", "text=", "--encoder: expected COLUMN=VALUE, got 'text='"),
     ("--encoder", "=gru", "--encoder: expected COLUMN=VALUE, got '=gru'")],
)
def test_malformed_mapping_option(cli, data: Path, tmp_path: Path, option: str, value: str, message: str) -> None:
    expect_user_error(cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST, option, value), message)


def test_too_many_threads(cli, data: Path, tmp_path: Path) -> None:
    result = cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST, "--threads", "100000")
    expect_user_error(result, "the number of threads must be at most", "got 100000")


def test_threads_environment_variable_not_a_number(cli, data: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFUSE_NUM_THREADS", "abc")
    at = FAST.index("--threads")
    result = cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST[:at], *FAST[at + 2 :])
    expect_user_error(result, "$MMFUSE_NUM_THREADS must be a whole number of threads, got 'abc'")


def test_divergence_in_the_only_epoch(cli, data: Path, tmp_path: Path) -> None:
    result = cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST, "--lr", "1e30")
    expect_user_error(result, "training stopped: the loss became nan at epoch 1, on the validation", "lower --lr")
    assert not (tmp_path / "m").exists()


def test_retrieval_divergence(cli, retriever: tuple[Path, Path], tmp_path: Path) -> None:
    fit = ["fit", retriever[1], "--task", "retrieval", "--pair", "query,doc", "--out", tmp_path / "m"]
    expect_user_error(cli(*fit, *FAST, "--lr", "1e30"), "training stopped: the loss became nan at epoch 1", "lower --lr")


# ------------------------------------------------ outputs that would replace inputs
def test_predict_out_is_the_data_file(cli, model: tuple[Path, Path], tmp_path: Path) -> None:
    data = write_csv(_frame(), tmp_path / "data")
    before = data.read_bytes()
    result = cli("predict", model[0], data, "--out", data, "--quiet")
    expect_user_error(result, f"--out {data} is the input data file")
    assert data.read_bytes() == before


def test_evaluate_json_is_the_data_file(cli, model: tuple[Path, Path], tmp_path: Path) -> None:
    data = write_csv(_frame(), tmp_path / "data")
    before = data.read_bytes()
    expect_user_error(cli("evaluate", model[0], data, "--json", data, "--quiet"), "is the input data file")
    assert data.read_bytes() == before


@pytest.mark.parametrize(
    "command",
    [["predict", "{model}", "{data}", "--out", "{model}/config.json"],
     ["evaluate", "{model}", "{data}", "--json", "{model}/metrics.json"],
     ["evaluate", "{model}", "{data}", "--correlation", "--out", "{model}"],
     ["explain", "{model}", "{data}", "--out", "{model}"]],
)
def test_output_inside_the_model_directory(cli, model: tuple[Path, Path], command: list[str]) -> None:
    before = snapshot(model[0])
    argv = [part.format(model=model[0], data=model[1]) for part in command]
    expect_user_error(cli(*argv, "--quiet"), f"the model directory {model[0]}", "write the output elsewhere")
    assert snapshot(model[0]) == before


# ------------------------------------------------------------- the wrong model
def test_explain_a_retrieval_model(cli, retriever: tuple[Path, Path], tmp_path: Path) -> None:
    result = cli("explain", retriever[0], retriever[1], "--out", tmp_path / "e", "--quiet")
    expect_user_error(result, f"{retriever[0]} is a retrieval model; explain works on classifiers and regressors")


def test_robustness_of_a_retrieval_model(cli, retriever: tuple[Path, Path], tmp_path: Path) -> None:
    result = cli("evaluate", retriever[0], retriever[1], "--robustness", "--correlation", "--quiet")
    expect_user_error(result, "--correlation and --robustness are for classifiers and regressors")


@pytest.mark.parametrize(
    ("labels", "prompt", "message"),
    [("a,a,b", "{}", "--labels names 'a' more than once"),
     ("a,b", "{} {x}", "and no other braces"),
     ("a,b", "{} {", "and no other braces")],
)
def test_bad_zero_shot_labels(cli, retriever: tuple[Path, Path], tmp_path: Path, labels: str, prompt: str,
                              message: str) -> None:
    result = cli("predict", retriever[0], retriever[1], "--labels", labels, "--prompt", prompt,
                 "--out", tmp_path / "p.csv", "--quiet")
    expect_user_error(result, message)


# ------------------------------------------------------------------ many classes
@pytest.mark.filterwarnings("error::pandas.errors.PerformanceWarning")
def test_many_classes_predict_without_warnings(cli, tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [float(i) for i in range(240)], "label": [f"k{i % 120}" for i in range(240)]})
    data = write_csv(frame, tmp_path / "data")
    assert cli("fit", data, "--target", "label", "--out", tmp_path / "m", *FAST).code == 0
    result = cli("predict", tmp_path / "m", data, "--out", tmp_path / "p.csv", "--quiet")
    assert result.code == 0, result.err
    assert pd.read_csv(tmp_path / "p.csv").shape == (240, 2 + 120 + 1)
