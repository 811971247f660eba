"""Tests for mmfuse.data.readers: every table format, original row numbers, bad lines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mmfuse.data.readers import BadLine, read_table
from mmfuse.errors import MmfuseError


def test_csv_types_empty_cells_and_base_dir(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("n,word,img\n1,apple,a.png\n2.5,,b.png\n-3,pear,\n")
    table = read_table(path)
    assert table.name == str(path) and table.base_dir == tmp_path.resolve()
    assert table.df.index.tolist() == [0, 1, 2]
    assert table.df["n"].tolist() == [1.0, 2.5, -3.0]
    assert pd.api.types.is_numeric_dtype(table.df["n"])
    assert table.df["word"].tolist()[::2] == ["apple", "pear"]
    assert table.df["word"].isna().tolist() == [False, True, False]  # empty cell -> missing
    assert table.bad_lines == []


def test_folder_reads_its_data_csv(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,x\n")
    table = read_table(tmp_path)
    assert table.name == str(tmp_path / "data.csv")
    assert table.df.to_dict("list") == {"a": [1], "b": ["x"]}


def test_base_dir_override(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a\n1\n")
    media = tmp_path / "media"
    assert read_table(tmp_path / "data.csv", base_dir=media).base_dir == media.resolve()


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("x\ttext\n1\thello, world\n2\tfoo bar\n")
    table = read_table(path)
    assert table.df["text"].tolist() == ["hello, world", "foo bar"]  # commas are not separators
    assert table.df["x"].tolist() == [1, 2]


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": ["x", None, "z"]}, index=[10, 11, 12])
    path = tmp_path / f"data{suffix}"
    frame.to_parquet(path)
    table = read_table(path)
    assert table.df.index.tolist() == [0, 1, 2]  # data-row numbers, not the stored index
    assert table.df["a"].tolist() == [1.5, 2.5, 3.5]
    assert table.df["b"].isna().tolist() == [False, True, False]


def test_corrupt_parquet_is_an_mmfuse_error(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(MmfuseError, match="cannot read Parquet file"):
        read_table(path)


def test_jsonl_keeps_row_numbers_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1, "b": "x"}\n\n{"a": 2, b}\n[1, 2]\n{"a": 3, "b": "z"}\n')
    table = read_table(path)
    assert table.df.index.tolist() == [0, 3]  # the blank line is not a record
    assert table.df["a"].tolist() == [1, 3]
    assert [b.row for b in table.bad_lines] == [1, 2]
    assert "invalid JSON on line 3" in table.bad_lines[0].reason
    assert table.bad_lines[0].raw == '{"a": 2, b}'
    assert table.bad_lines[1].reason == "line 4 is not a JSON object"


@pytest.mark.parametrize("suffix", [".ndjson", ".json"])
def test_other_jsonl_suffixes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    path.write_text('{"a": [1, 2]}\n{"a": [3, 4]}\n')
    assert read_table(path).df["a"].tolist() == [[1, 2], [3, 4]]


def test_dataframe_is_wrapped_with_fresh_row_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2]}, index=["p", "q"])
    table = read_table(frame, base_dir=tmp_path)
    assert table.name == "<DataFrame>"
    assert table.base_dir == tmp_path.resolve()
    assert table.df.index.tolist() == [0, 1]
    assert frame.index.tolist() == ["p", "q"]  # the caller's frame is untouched
    assert read_table(table) is table


def test_dataframe_base_dir_defaults_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_table(pd.DataFrame({"a": [1]})).base_dir == tmp_path.resolve()


def test_wrong_field_count_is_a_bad_line_and_later_rows_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('a,b,c\n0,x,p\n1,y\n2,z,q,extra\n3,"two\nlines",r\n\n4,w,s\n')
    table = read_table(path)
    assert table.df.index.tolist() == [0, 3, 4]
    assert table.df["a"].tolist() == [0, 3, 4]  # each row's own number: index matches column a
    assert table.df.loc[3, "b"] == "two\nlines"
    assert table.bad_lines == [
        BadLine(1, "expected 3 fields, found 2 (line 3)", "1,y"),
        BadLine(2, "expected 3 fields, found 4 (line 4)", "2,z,q,extra"),
    ]


def test_non_utf8_bytes_survive_as_surrogates(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"id,text\n0,caf\xe9\n1,ok\n")
    table = read_table(path)
    assert table.df.loc[0, "text"] == "caf\udce9"
    assert table.df.loc[0, "text"].encode("utf-8", "surrogateescape") == b"caf\xe9"
    assert table.df.loc[1, "text"] == "ok"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MmfuseError, match=r"data file not found: .*nope\.csv"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(MmfuseError, match=r"data file not found: .*data\.csv"):
        read_table(tmp_path)  # a folder without data.csv


def test_unknown_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("a\n1\n")
    with pytest.raises(MmfuseError, match=r"unsupported table format '\.xlsx'; use one of: \.csv"):
        read_table(path)


def test_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("")
    with pytest.raises(MmfuseError, match="empty"):
        read_table(path)


def test_header_only_csv_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    table = read_table(path)
    assert list(table.df.columns) == ["a", "b"] and len(table.df) == 0


def test_duplicate_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(MmfuseError, match=r"data\.csv: duplicate column names: a"):
        read_table(path)


def test_repeated_values_share_one_string_until_a_column_has_too_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmfuse.data import readers

    monkeypatch.setattr(readers, "SHARED_VALUES", 2)
    path = tmp_path / "t.csv"
    path.write_text("label,name\n" + "".join(f"left,n{i}\nright,n{i % 2}\n" for i in range(4)), encoding="utf-8")
    df = read_table(path).df
    labels = df["label"].tolist()
    assert labels == ["left", "right"] * 4 and labels[0] is labels[2] is labels[6]
    names = df["name"].tolist()  # n0, n0, n1, n1, n2 (a third value: sharing stops) ...
    assert names == ["n0", "n0", "n1", "n1", "n2", "n0", "n3", "n1"]
    assert names[0] is names[1] and names[5] is not names[0]
