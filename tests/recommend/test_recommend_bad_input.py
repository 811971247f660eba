"""Bad recommendation input through the CLI: exit 2 with a message naming the file, row and
column (no traceback); with ``--on-bad-record skip`` the fit succeeds and ``rejected.csv``
lists what was left out. Rows are 0-based data-row numbers (the header is not a row).

The tables (:func:`_write_tables`) hold one of each problem:

- ``inter.csv`` row 2 has the rating ``bad``, row 5 names item ``q`` that ``items.csv``
  lacks, row 6 repeats row 0's (user, item);
- ``items.csv`` lists ``v``, which nobody interacted with, and has an entirely empty column;
- ``users.csv`` lists ``d``, who has no interaction;
- ``friends.csv`` row 0 is a self-loop and row 1 names ``zz``, a user nobody knows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from recommend_data import CliResult, run_cli

from mmfuse.cli.main import main

FAST = ["--epochs", "1", "--threads", "1", "--seed", "0"]
Capsys = pytest.CaptureFixture[str]


def _write_tables(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "user": ["a", "a", "b", "b", "c", "c", "a", "c"],
        "item": ["x", "y", "z", "w", "x", "q", "x", "w"],
        "rating": ["5", "3", "bad", "2", "4", "1", "4", "5"],
    }).to_csv(folder / "inter.csv", index=False)  # fmt: skip
    pd.DataFrame({
        "item": ["x", "y", "z", "w", "v"],
        "colour": ["red", "blue", "red", "blue", "red"],
        "empty": [""] * 5,
    }).to_csv(folder / "items.csv", index=False)  # fmt: skip
    pd.DataFrame({"user": ["a", "b", "c", "d"]}).to_csv(folder / "users.csv", index=False)
    friends = pd.DataFrame({"user": ["a", "b", "a", "c"], "friend": ["a", "zz", "d", "b"]})
    friends.to_csv(folder / "friends.csv", index=False)
    test = pd.DataFrame({"user": ["a", "b", "c"], "item": ["z", "y", "y"], "rating": [5, 1, 4]})
    test.to_csv(folder / "test.csv", index=False)
    return folder


def _fit_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(data), "--task", "recommendation", "--user", "user", "--item", "item",
            "--out", str(out), *FAST, *extra]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tables(tmp_path_factory.mktemp("bad-tables"))


@pytest.fixture(scope="module")
def skipped(tables: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    """(model, output) of a fit on every table with --on-bad-record skip."""
    out = tmp_path_factory.mktemp("skipped") / "model"
    result = run_cli(_fit_argv(
        tables / "inter.csv", out, "--rating", "rating", "--items", str(tables / "items.csv"),
        "--users", str(tables / "users.csv"), "--social", str(tables / "friends.csv"),
        "--on-bad-record", "skip"))  # fmt: skip
    assert result.code == 0, result.err
    return out, result


def _run(capsys: Capsys, argv: list[str]) -> CliResult:
    code = main(argv)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def _fit(capsys: Capsys, tables: Path, out: Path, *extra: str) -> CliResult:
    return _run(capsys, _fit_argv(tables / "inter.csv", out, *extra))


def _refused(result: CliResult) -> str:
    """The message of a refused command: exit 2, no traceback, starting with ``error: ``."""
    assert result.code == 2, result
    assert "Traceback" not in result.err and "bug in mmfuse" not in result.err, result.err
    assert result.err.count("error: ") == 1, result.err
    return result.err[result.err.index("error: "):].strip()


def _one_line(result: CliResult) -> str:
    message = _refused(result)
    assert "\n" not in message, message
    return message


def _where(rejected: pd.DataFrame) -> list[tuple[str, int, str]]:
    """(file name, row, column) of each line of rejected.csv."""
    names = rejected["file"].map(lambda f: Path(f).name)
    return list(zip(names, rejected["row"], rejected["column"]))


# --------------------------------------------------------------------- id columns
@pytest.mark.parametrize("given", [["--user", "user"], ["--item", "item"], []])
def test_fit_needs_user_and_item(capsys: Capsys, tables: Path, tmp_path: Path,
                                 given: list[str]) -> None:
    argv = ["fit", str(tables / "inter.csv"), "--task", "recommendation", *given,
            "--out", str(tmp_path / "m"), *FAST]
    assert "--user COL --item COL" in _one_line(_run(capsys, argv))


@pytest.mark.parametrize(("flag", "column"),
                         [("--user", "person"), ("--item", "product"), ("--rating", "stars")])
def test_unknown_column_lists_the_columns(capsys: Capsys, tables: Path, tmp_path: Path,
                                          flag: str, column: str) -> None:
    names = {"--user": "user", "--item": "item"} | {flag: column}
    argv = ["fit", str(tables / "inter.csv"), "--task", "recommendation",
            *(x for pair in names.items() for x in pair), "--out", str(tmp_path / "m"), *FAST]
    message = _one_line(_run(capsys, argv))
    assert message == (f"error: {tables / 'inter.csv'}: no column {column!r} ({flag}); "
                       "its columns are: user, item, rating")


def test_user_table_without_the_user_column(capsys: Capsys, tables: Path, tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "age": [3]}).to_csv(tmp_path / "people.csv", index=False)
    result = _fit(capsys, tables, tmp_path / "m", "--users", str(tmp_path / "people.csv"))
    assert _one_line(result) == (f"error: {tmp_path / 'people.csv'}: no column 'user' "
                                 "(the user id); its columns are: id, age")


def test_recommendation_takes_no_target(capsys: Capsys, tables: Path, tmp_path: Path) -> None:
    result = _fit(capsys, tables, tmp_path / "m", "--target", "rating")
    assert "takes no --target" in _one_line(result)


def test_ids_written_as_numbers_match_across_tables(capsys: Capsys, tmp_path: Path) -> None:
    # items.csv has an empty id, so pandas reads its ids as 10.0, 20.0, ...: still 10, 20
    (tmp_path / "inter.csv").write_text("user,item\n1,10\n1,20\n2,20\n2,30\n3,10\n")
    (tmp_path / "items.csv").write_text("item,size\n10,1.5\n20,2.5\n,3.0\n30,4.0\n40,5.5\n")
    result = _run(capsys, _fit_argv(tmp_path / "inter.csv", tmp_path / "m",
                                    "--items", str(tmp_path / "items.csv")))
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "m" / "ids.json").read_text()) == {
        "items": ["10", "20", "30", "40"], "users": ["1", "2", "3"]}
    result = _run(capsys, ["recommend", str(tmp_path / "m"), "--user", "1", "--json"])
    assert "unknown" not in result.err
    assert {r["item"] for r in json.loads(result.out)} == {"30", "40"}  # 1 has 10 and 20


# ------------------------------------------------------------ bad interaction rows
def test_unknown_item_stops_the_fit_naming_file_row_and_column(capsys: Capsys, tables: Path,
                                                               tmp_path: Path) -> None:
    result = _fit(capsys, tables, tmp_path / "m", "--items", str(tables / "items.csv"))
    message = _refused(result)
    assert message.startswith(f"error: {tables / 'inter.csv'}: 1 bad value(s) in 1 record(s):")
    assert "row 5, column 'item': item 'q' is not in the item table" in message
    assert "--on-bad-record skip" in message
    assert not (tmp_path / "m" / "config.json").exists()


def test_bad_rows_message_gives_the_fix_once(capsys: Capsys, tables: Path, tmp_path: Path) -> None:
    result = _fit(capsys, tables, tmp_path / "m", "--items", str(tables / "items.csv"))
    message = _refused(result)
    assert message.count("--on-bad-record skip") == 1, message


def test_non_numeric_rating_stops_the_fit(capsys: Capsys, tables: Path, tmp_path: Path) -> None:
    message = _refused(_fit(capsys, tables, tmp_path / "m", "--rating", "rating"))
    assert message.startswith(f"error: {tables / 'inter.csv'}: 1 bad value(s)")
    assert "row 2, column 'rating': not a number: 'bad'" in message


def test_skip_lists_every_row_left_out(skipped: tuple[Path, CliResult]) -> None:
    out, result = skipped
    rejected = pd.read_csv(out / "rejected.csv")
    assert _where(rejected) == [("inter.csv", 2, "rating"), ("inter.csv", 5, "item"),
                                ("friends.csv", 0, "friend"), ("friends.csv", 1, "friend")]
    reasons = rejected["reason"].tolist()
    assert reasons[0] == "not a number: 'bad'" and "'q'" in reasons[1]
    assert reasons[2] == "self-loop: user 'a' names itself" and "'zz'" in reasons[3]
    assert f"left out 4 row(s): see {out / 'rejected.csv'}" in result.out
    assert "inter.csv: left out 2 interaction row(s)" in result.err
    assert "friends.csv: left out 2 social edge(s)" in result.err


def test_duplicate_interactions_are_merged_and_said(skipped: tuple[Path, CliResult]) -> None:
    out, result = skipped
    said = "inter.csv: merged 1 duplicate (user, item) row(s) keeping the largest rating"
    assert said in result.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_valid"] == 5  # 8 rows - 2 rejected - 1 duplicate


def test_fewer_than_two_usable_interactions(capsys: Capsys, tmp_path: Path) -> None:
    pd.DataFrame({"user": ["a", None], "item": ["x", "y"]}).to_csv(tmp_path / "i.csv", index=False)
    argv = _fit_argv(tmp_path / "i.csv", tmp_path / "m", "--on-bad-record", "skip")
    assert "fewer than 2 usable interactions" in _one_line(_run(capsys, argv))


# ----------------------------------------------------- rows without interactions
def test_item_without_interactions_is_recommendable(capsys: Capsys,
                                                    skipped: tuple[Path, CliResult]) -> None:
    out, _ = skipped
    assert "v" in json.loads((out / "ids.json").read_text())["items"]
    result = _run(capsys, ["recommend", str(out), "--user", "c", "-k", "5", "--json"])
    assert {r["item"] for r in json.loads(result.out)} == {"y", "z", "v"}  # c has x and w


def test_user_without_interactions_is_a_cold_user(capsys: Capsys,
                                                  skipped: tuple[Path, CliResult]) -> None:
    out, _ = skipped
    result = _run(capsys, ["recommend", str(out), "--user", "d", "-k", "5", "--json"])
    assert result.code == 0 and "unknown to the model" not in result.err  # d is in users.csv
    assert len(json.loads(result.out)) == 5  # nothing seen: every item


# ------------------------------------------------------------------ social table
def test_social_edges_left_out_are_listed_by_default(tables: Path, tmp_path: Path) -> None:
    result = run_cli(_fit_argv(tables / "inter.csv", tmp_path / "m",
                               "--users", str(tables / "users.csv"),
                               "--social", str(tables / "friends.csv")))
    assert result.code == 0, result.err
    assert "friends.csv: left out 2 social edge(s)" in result.err
    rejected = pd.read_csv(tmp_path / "m" / "rejected.csv")
    assert _where(rejected) == [("friends.csv", 0, "friend"), ("friends.csv", 1, "friend")]


def test_social_table_with_one_column(capsys: Capsys, tables: Path, tmp_path: Path) -> None:
    pd.DataFrame({"user": ["a", "b"]}).to_csv(tmp_path / "friends.csv", index=False)
    result = _fit(capsys, tables, tmp_path / "m", "--social", str(tmp_path / "friends.csv"))
    assert _one_line(result) == (f"error: {tmp_path / 'friends.csv'}: a social table needs two "
                                 "user-id columns, found user")


# -------------------------------------------------------------------- item table
def test_empty_item_column_is_ignored_with_a_note(skipped: tuple[Path, CliResult]) -> None:
    out, result = skipped
    assert "ignoring column 'empty': the column is empty" in result.err
    schema = json.loads((out / "preprocess.json").read_text())["items"]["schema"]
    assert schema["kinds"] == {"colour": "categorical"}
    assert schema["ignored"] == {"empty": "the column is empty"}


def test_item_table_with_only_an_empty_column(capsys: Capsys, tables: Path,
                                              tmp_path: Path) -> None:
    items = pd.DataFrame({"item": ["x", "y", "z", "w", "q"], "empty": [""] * 5})
    items.to_csv(tmp_path / "items.csv", index=False)
    result = _fit(capsys, tables, tmp_path / "m", "--items", str(tmp_path / "items.csv"))
    assert _one_line(result) == (f"error: {tmp_path / 'items.csv'}: no usable feature columns: "
                                 "empty: the column is empty")


def test_duplicate_item_ids_name_both_rows(capsys: Capsys, tables: Path, tmp_path: Path) -> None:
    items = pd.DataFrame({"item": ["x", "y", "x"], "colour": ["a", "b", "c"]})
    items.to_csv(tmp_path / "items.csv", index=False)
    result = _fit(capsys, tables, tmp_path / "m", "--items", str(tmp_path / "items.csv"))
    assert _one_line(result) == (f"error: {tmp_path / 'items.csv'}: item id 'x' appears twice "
                                 "(rows 0 and 2); each item must have one row")


# ---------------------------------------------------------------------- evaluate
def test_relevant_min_needs_a_rating_column(capsys: Capsys, tables: Path, tmp_path: Path) -> None:
    implicit = pd.DataFrame({"user": ["a", "a", "b", "b"], "item": ["x", "y", "y", "z"]})
    implicit.to_csv(tmp_path / "i.csv", index=False)
    fitted = run_cli(_fit_argv(tmp_path / "i.csv", tmp_path / "m"))
    assert fitted.code == 0, fitted.err
    argv = ["evaluate", str(tmp_path / "m"), str(tables / "test.csv"), "--relevant-min", "4"]
    message = _one_line(_run(capsys, argv))
    assert message == "error: --relevant-min needs the rating column (fit with --rating COL)"


def test_relevant_min_with_a_rating_column(capsys: Capsys, tables: Path,
                                           skipped: tuple[Path, CliResult], tmp_path: Path) -> None:
    result = _run(capsys, ["evaluate", str(skipped[0]), str(tables / "test.csv"),
                           "--relevant-min", "4", "--json", str(tmp_path / "m.json")])
    assert result.code == 0, result.err
    written = json.loads((tmp_path / "m.json").read_text())
    # a-z (5) and c-y (4) are relevant, b-y (1) is not
    assert (written["n_interactions"], written["n_users"]) == (2, 2)


def test_candidates_naming_unknown_items(capsys: Capsys, tables: Path,
                                         skipped: tuple[Path, CliResult], tmp_path: Path) -> None:
    pd.DataFrame({"item": ["x", "nope", "y"]}).to_csv(tmp_path / "candidates.csv", index=False)
    message = _one_line(_run(capsys, ["evaluate", str(skipped[0]), str(tables / "test.csv"),
                                      "--candidates", str(tmp_path / "candidates.csv")]))
    assert "candidates.csv: 1 candidate item(s) are not in the catalogue" in message
    assert "'nope'" in message


def test_test_table_without_the_user_column(capsys: Capsys, skipped: tuple[Path, CliResult],
                                            tmp_path: Path) -> None:
    pd.DataFrame({"who": ["a"], "item": ["z"]}).to_csv(tmp_path / "test.csv", index=False)
    message = _one_line(_run(capsys, ["evaluate", str(skipped[0]), str(tmp_path / "test.csv")]))
    assert message == (f"error: {tmp_path / 'test.csv'}: no column 'user' (--user); "
                       "its columns are: who, item")


def test_test_rows_with_unknown_items_are_counted(capsys: Capsys, skipped: tuple[Path, CliResult],
                                                  tmp_path: Path) -> None:
    pd.DataFrame({"user": ["a", "b"], "item": ["z", "unheard"]}).to_csv(tmp_path / "test.csv",
                                                                       index=False)
    result = _run(capsys, ["evaluate", str(skipped[0]), str(tmp_path / "test.csv"), "--json",
                           str(tmp_path / "m.json")])
    assert result.code == 0, result.err
    written = json.loads((tmp_path / "m.json").read_text())
    assert (written["n_interactions"], written["n_rejected"], written["n_users"]) == (1, 1, 1)
    assert "test.csv: left out 1 interaction row(s)" in result.err


def test_test_rows_left_out_are_listed_with_out(skipped: tuple[Path, CliResult],
                                                tmp_path: Path) -> None:
    pd.DataFrame({"user": ["a", "b"], "item": ["z", "unheard"]}).to_csv(tmp_path / "test.csv",
                                                                       index=False)
    result = run_cli(["evaluate", str(skipped[0]), str(tmp_path / "test.csv"),
                      "--out", str(tmp_path / "report")])
    assert result.code == 0, result.err
    rejected = pd.read_csv(tmp_path / "report" / "rejected.csv")
    assert _where(rejected) == [("test.csv", 1, "item")]


def test_correlation_is_not_for_recommenders(capsys: Capsys, tables: Path,
                                             skipped: tuple[Path, CliResult]) -> None:
    argv = ["evaluate", str(skipped[0]), str(tables / "test.csv"), "--correlation"]
    assert "is a recommendation model" in _one_line(_run(capsys, argv))
