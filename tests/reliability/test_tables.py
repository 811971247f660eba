"""Bad tables: unreadable, empty, mis-delimited, nested, mistyped, absurd or incomplete.

Each case: the exit code, a message naming file / row / column and the fix, no traceback
(the harness), and the input folder unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reliability_harness import FAST, expect_user_error, snapshot, tiny_frame, trained_frame, write_csv


def _fit(cli, data: Path, out: Path, *extra: str):
    return cli("fit", data, "--target", "label", "--out", out, *FAST, *extra)


@pytest.fixture
def data_dir(media, tmp_path: Path) -> Path:
    write_csv(tiny_frame(media), tmp_path)
    return tmp_path


def test_missing_data_file(cli, tmp_path: Path) -> None:
    expect_user_error(_fit(cli, tmp_path / "nope.csv", tmp_path / "m"), f"data file not found: {tmp_path / 'nope.csv'}")


def test_folder_without_data_csv(cli, tmp_path: Path) -> None:
    expect_user_error(_fit(cli, tmp_path, tmp_path / "m"), "data.csv")


def test_zero_byte_csv(cli, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b"")
    expect_user_error(_fit(cli, tmp_path / "d.csv", tmp_path / "m"), "d.csv", "empty")


def test_header_only_csv(cli, data_dir: Path) -> None:
    path = data_dir / "header.csv"
    path.write_text("photo,note,price,colour,label\n")
    expect_user_error(_fit(cli, path, data_dir / "m"), str(path), "no records to train on")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_header_only_at_prediction(cli, trained, tmp_path: Path, command: str) -> None:
    path = tmp_path / "header.csv"
    path.write_text("photo,note,price,colour,label\n")
    extra = ["--out", tmp_path / "p.csv"] if command == "predict" else []
    expect_user_error(cli(command, trained[0], path, *extra), "no records")


def test_unsupported_table_format(cli, tmp_path: Path) -> None:
    (tmp_path / "d.xlsx").write_bytes(b"PK\x03\x04")
    expect_user_error(_fit(cli, tmp_path / "d.xlsx", tmp_path / "m"), "unsupported table format '.xlsx'", ".csv")


def test_duplicate_column_names(cli, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,a,label\n1,2,x\n3,4,y\n")
    expect_user_error(_fit(cli, tmp_path / "d.csv", tmp_path / "m"), "duplicate column names: a")


def test_unknown_target(cli, data_dir: Path) -> None:
    result = cli("fit", data_dir / "data.csv", "--target", "lable", "--out", data_dir / "m", *FAST)
    expect_user_error(result, "unknown target column 'lable'", "photo, note, price, colour, label")


def test_one_class_target(cli, media, tmp_path: Path) -> None:
    frame = tiny_frame(media)
    frame["label"] = "yes"
    path = write_csv(frame, tmp_path)
    expect_user_error(_fit(cli, path, tmp_path / "m"), "'label' has 1 class (yes)", "at least two classes")


def test_target_all_missing(cli, media, tmp_path: Path) -> None:
    frame = tiny_frame(media)
    frame["label"] = None
    path = write_csv(frame, tmp_path)
    expect_user_error(_fit(cli, path, tmp_path / "m"), "'label'")


def test_missing_target_values_are_named(cli, media, tmp_path: Path) -> None:
    frame = tiny_frame(media)
    frame.loc[5, "label"] = None
    path = write_csv(frame, tmp_path)
    expect_user_error(_fit(cli, path, tmp_path / "m"), "row 5, column 'label'", "--on-bad-record skip")


def test_target_absent_at_evaluate(cli, trained, tmp_path: Path) -> None:
    frame = trained_frame(trained[1]).drop(columns=["label"])
    path = write_csv(frame, tmp_path)
    expect_user_error(cli("evaluate", trained[0], path), "'label'")


def test_byte_order_mark_is_not_part_of_the_first_column(cli, media, tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    with open(path, "w", encoding="utf-8-sig") as handle:
        tiny_frame(media).to_csv(handle, index=False)
    result = cli("info", path, "--target", "label")
    assert result.code == 0
    assert "\ufeff" not in result.out and "photo   image" in result.out
    assert _fit(cli, path, tmp_path / "m").code == 0


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiter_is_sniffed(cli, media, tmp_path: Path, sep: str) -> None:
    path = tmp_path / "semi.csv"
    tiny_frame(media).to_csv(path, index=False, sep=sep)
    result = cli("info", path)
    assert result.code == 0 and "24 records, 5 columns" in result.out


def test_text_with_semicolons_stays_comma_separated(cli, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('note,label\n"a; b; c",x\n"d; e",y\n')
    assert "2 records, 2 columns" in cli("info", path).out


def test_wrong_field_count_names_the_line(cli, data_dir: Path) -> None:
    path = data_dir / "data.csv"
    lines = path.read_text().splitlines()
    lines[4] += ",surplus"
    path.write_text("\n".join(lines) + "\n")
    expect_user_error(_fit(cli, path, data_dir / "m"), "row 3", "expected 5 fields, found 6 (line 5)")


def test_jsonl_line_that_is_not_an_object(cli, media, tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    records = tiny_frame(media).to_dict("records")
    lines = [json.dumps(r) for r in records]
    lines[2] = "[1, 2, 3]"
    path.write_text("\n".join(lines) + "\n")
    expect_user_error(_fit(cli, path, tmp_path / "m"), "row 2", "not a JSON object")


def test_parquet_list_of_numbers_is_an_embedding(cli, media, tmp_path: Path) -> None:
    frame = tiny_frame(media)
    frame["vec"] = [np.array([1.0, 2.0, float(i)]) for i in range(len(frame))]
    frame.to_parquet(tmp_path / "d.parquet")
    result = cli("info", tmp_path / "d.parquet")
    assert result.code == 0 and "vec (embedding)" in result.out
    assert _fit(cli, tmp_path / "d.parquet", tmp_path / "m").code == 0


@pytest.mark.parametrize(("value", "what"), [({"a": 1}, "a struct or map"),
                                             ([["a", "b"]], "not a flat list of numbers")])
def test_parquet_nested_column_is_refused(cli, media, tmp_path: Path, value: object, what: str) -> None:
    frame = tiny_frame(media)
    frame["nested"] = [value] * len(frame)
    frame.to_parquet(tmp_path / "d.parquet")
    expect_user_error(cli("info", tmp_path / "d.parquet"), "row 0, column 'nested'", what, "Flatten")


@pytest.mark.parametrize(("value", "reason"), [("cheap", "'cheap' is not a number"),
                                               ("inf", "is not a finite number"),
                                               ("-inf", "is not a finite number")])
def test_bad_number_is_named(cli, media, tmp_path: Path, value: str, reason: str) -> None:
    frame = tiny_frame(media).astype({"price": object})
    frame.loc[7, "price"] = value
    path = write_csv(frame, tmp_path)
    before = snapshot(tmp_path)
    expect_user_error(_fit(cli, path, tmp_path / "m"), str(path), "row 7, column 'price'", reason)
    assert snapshot(tmp_path) == before  # nothing written, not even the model folder


def test_nan_numbers_are_imputed(cli, media, tmp_path: Path) -> None:
    frame = tiny_frame(media).astype({"price": object})
    frame.loc[[2, 3], "price"] = ["NaN", None]
    out = tmp_path / "m"
    assert _fit(cli, write_csv(frame, tmp_path), out, "--on-bad-record", "skip").code == 0
    assert pd.read_csv(out / "rejected.csv").empty


def test_absurd_number_in_training_is_named_not_nan(cli, media, tmp_path: Path) -> None:
    frame = tiny_frame(media)
    frame.loc[3, "price"] = 1e308
    path = write_csv(frame, tmp_path)
    expect_user_error(_fit(cli, path, tmp_path / "m"), "row 3, column 'price'", "standard deviations")
    out = tmp_path / "m2"
    result = _fit(cli, path, out, "--on-bad-record", "skip")
    assert result.code == 0
    rejected = pd.read_csv(out / "rejected.csv")
    assert rejected["row"].tolist() == [3] and rejected["column"].tolist() == ["price"]
    history = pd.read_csv(out / "history.csv")
    assert np.isfinite(history["train_loss"]).all()


def test_absurd_number_at_predict_is_named(cli, trained, tmp_path: Path) -> None:
    frame = trained_frame(trained[1])
    frame.loc[[3, 7], "price"] = 1e30
    path = write_csv(frame, tmp_path)
    out = tmp_path / "p.csv"
    expect_user_error(cli("predict", trained[0], path, "--out", out), "row 3, column 'price'", "row 7")
    assert not out.exists()
    assert cli("predict", trained[0], path, "--out", out, "--on-bad-record", "skip").code == 0
    predictions = pd.read_csv(out, keep_default_na=False)
    assert len(predictions) == len(frame)
    assert "standard deviations" in predictions.loc[3, "error"]
    assert predictions.loc[0, "error"] == "" and predictions.loc[0, "prediction"] in ("yes", "no")


def test_evaluate_says_what_it_skipped(cli, trained, tmp_path: Path) -> None:
    frame = trained_frame(trained[1])
    frame.loc[[3, 7], "price"] = 1e30
    path = write_csv(frame, tmp_path)
    expect_user_error(cli("evaluate", trained[0], path), "row 3, column 'price'")
    report = tmp_path / "m.json"
    result = cli("evaluate", trained[0], path, "--on-bad-record", "skip", "--json", report)
    assert result.code == 0
    assert f"(22 of {len(frame)} records)" in result.out
    assert "2 bad record(s) were left out" in result.err
    document = json.loads(report.read_text())
    assert (document["n_records"], document["n_scored"], document["n_rejected"]) == (24, 22, 2)
    assert [r["row"] for r in document["rejected"]] == [3, 7]
    assert document["rejected"][0]["column"] == "price"
    out = tmp_path / "report"
    assert cli("evaluate", trained[0], path, "--on-bad-record", "skip", "--out", out).code == 0
    assert pd.read_csv(out / "rejected.csv")["row"].tolist() == [3, 7]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_missing_feature_columns_are_an_error(cli, trained, tmp_path: Path, command: str) -> None:
    frame = trained_frame(trained[1]).drop(columns=["price", "colour"])
    path = write_csv(frame, tmp_path)
    extra = ["--out", tmp_path / "p.csv"] if command == "predict" else []
    expect_user_error(cli(command, trained[0], path, *extra), "'price', 'colour'",
                      "--allow-missing-columns")


def test_missing_columns_allowed_on_request(cli, trained, tmp_path: Path) -> None:
    frame = trained_frame(trained[1]).drop(columns=["photo", "note"])
    path = write_csv(frame, tmp_path)
    out = tmp_path / "p.csv"
    result = cli("predict", trained[0], path, "--out", out, "--allow-missing-columns")
    assert result.code == 0 and "'photo', 'note'" in result.err and "missing" in result.err
    assert len(pd.read_csv(out)) == len(frame)


def test_unknown_kind_override_column(cli, data_dir: Path) -> None:
    result = _fit(cli, data_dir / "data.csv", data_dir / "m", "--kinds", "colur=text")
    expect_user_error(result, "'colur'")


def test_missing_numbers_in_a_numeric_frame_are_imputed(cli, media, tmp_path: Path) -> None:
    frame = tiny_frame(media)
    frame.loc[[1, 4], "price"] = np.nan  # float NaN cells (a DataFrame, Parquet or JSON null)
    frame.to_parquet(tmp_path / "d.parquet")
    assert _fit(cli, tmp_path / "d.parquet", tmp_path / "m").code == 0
