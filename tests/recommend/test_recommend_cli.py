"""The recommendation commands through ``main(argv)`` on the generated dataset: fit, evaluate,
recommend (one user, a table of users, JSON) and explain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recommend_data import CliResult

from mmfuse.cli.main import main
from mmfuse.estimators.io import load

MODEL_FILES = {"config.json", "model.safetensors", "catalogue.safetensors", "ids.json",
               "preprocess.json", "metrics.json", "history.csv"}
Capsys = pytest.CaptureFixture[str]


def _run(capsys: Capsys, *argv: object) -> CliResult:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def _user_error(result: CliResult) -> str:
    """The one-line message of a refused command (exit 2, no traceback)."""
    assert result.code == 2, result
    assert "Traceback" not in result.err and "bug in mmfuse" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    return lines[0]


def _recommend_json(capsys: Capsys, model: Path, *options: str) -> list[dict[str, object]]:
    result = _run(capsys, "recommend", model, *options, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_fit_writes_a_model_directory(generated_fit: tuple[Path, CliResult]) -> None:
    out, result = generated_fit
    assert MODEL_FILES <= {p.name for p in out.iterdir()}
    assert f"model written to {out} (120 users, 80 items)" in result.out
    assert "validation (" in result.out and "recall@20" in result.out
    config = json.loads((out / "config.json").read_text())
    assert config["estimator"] == "MultimodalRecommender"
    assert (config["params"]["user"], config["params"]["item"]) == ("user", "item")
    assert config["model"]["social"] is True
    assert json.loads((out / "ids.json").read_text())["items"][:2] == ["i0001", "i0002"]


def test_evaluate_prints_and_writes_metrics(capsys: Capsys, generated: Path, generated_model: Path,
                                           tmp_path: Path) -> None:
    result = _run(capsys, "evaluate", generated_model, generated / "test.csv", "--k", "5,10",
                  "--json", tmp_path / "m.json")
    assert result.code == 0, result.err
    written = json.loads((tmp_path / "m.json").read_text())
    names = ("recall", "ndcg", "hit", "map", "coverage")
    assert set(written["metrics"]) == {f"{n}@{k}" for n in names for k in (5, 10)}
    assert set(written["most_popular"]) == set(written["metrics"])
    test = pd.read_csv(generated / "test.csv")
    assert written["n_users"] == test["user"].nunique()
    assert written["n_interactions"] == len(test)
    assert written["n_items_ranked"] == 80 and written["n_cold_users"] == 0
    shown = f"ranking 80 items for {written['n_users']} users (0 unknown to the model)"
    assert shown in result.out
    assert f"{written['metrics']['recall@10']:.4f}" in result.out
    # the same numbers as the Python API on the loaded model
    rec = load(generated_model, verbose=False)
    assert rec.evaluate(generated / "test.csv", ks=(5, 10)) == written


def test_evaluate_with_candidates(capsys: Capsys, generated: Path, generated_model: Path,
                                  tmp_path: Path) -> None:
    test = pd.read_csv(generated / "test.csv")
    chosen = sorted(set(test["item"].head(12)))
    pd.DataFrame({"item": chosen}).to_csv(tmp_path / "candidates.csv", index=False)
    result = _run(capsys, "evaluate", generated_model, generated / "test.csv", "--k", "3",
                  "--candidates", tmp_path / "candidates.csv", "--json", tmp_path / "m.json")
    assert result.code == 0, result.err
    written = json.loads((tmp_path / "m.json").read_text())
    assert written["n_items_ranked"] == len(chosen)
    assert written["n_interactions"] == int(test["item"].isin(chosen).sum())


def test_recommend_one_user_as_json(capsys: Capsys, generated_model: Path) -> None:
    shown = _recommend_json(capsys, generated_model, "--user", "u0003", "-k", "4")
    expected = load(generated_model, verbose=False).recommend(["u0003"], k=4)
    assert [r["rank"] for r in shown] == [1, 2, 3, 4] and {r["user"] for r in shown} == {"u0003"}
    assert [r["item"] for r in shown] == expected["item"].tolist()
    np.testing.assert_allclose([r["score"] for r in shown], expected["score"], rtol=1e-6)


def test_recommend_excludes_seen_items_unless_asked(capsys: Capsys, generated: Path,
                                                    generated_model: Path) -> None:
    seen = set(pd.read_csv(generated / "train.csv").query("user == 'u0003'")["item"])
    shown = _recommend_json(capsys, generated_model, "--user", "u0003", "-k", "80")
    assert len(shown) == 80 - len(seen) and not seen & {r["item"] for r in shown}
    everything = _recommend_json(capsys, generated_model, "--user", "u0003", "-k", "80",
                                 "--include-seen")
    assert {r["item"] for r in everything} >= seen


def test_recommend_a_table_of_users_to_csv(capsys: Capsys, generated_model: Path,
                                           tmp_path: Path) -> None:
    pd.DataFrame({"user": ["u0001", "u0002", "newcomer"]}).to_csv(tmp_path / "who.csv", index=False)
    result = _run(capsys, "recommend", generated_model, tmp_path / "who.csv", "-k", "3", "--out",
                  tmp_path / "recs.csv")
    assert result.code == 0, result.err
    recs = pd.read_csv(tmp_path / "recs.csv")
    assert list(recs.columns) == ["user", "rank", "item", "score"]
    assert recs["user"].tolist() == ["u0001"] * 3 + ["u0002"] * 3 + ["newcomer"] * 3
    assert f"wrote 9 recommendations for 3 user(s) to {tmp_path / 'recs.csv'}" in result.out
    note = "note: 1 user(s) unknown to the model (e.g. 'newcomer') get the most popular items"
    assert note in result.err


def test_unknown_user_gets_the_most_popular_items(capsys: Capsys, generated: Path,
                                                  generated_model: Path) -> None:
    result = _run(capsys, "recommend", generated_model, "--user", "nobody", "-k", "5", "--json")
    assert result.code == 0
    assert "unknown to the model (e.g. 'nobody') get the most popular items" in result.err
    train = pd.read_csv(generated / "train.csv")
    counts = train["item"].value_counts()
    shown = json.loads(result.out)
    assert [counts[r["item"]] for r in shown] == sorted(counts.to_numpy(), reverse=True)[:5]
    shares = [counts[r["item"]] / len(train) for r in shown]
    np.testing.assert_allclose([r["score"] for r in shown], shares, rtol=1e-6)


@pytest.mark.parametrize("k", ["0", "-1"])
def test_recommend_refuses_k_below_one(capsys: Capsys, generated_model: Path, k: str) -> None:
    line = _user_error(_run(capsys, "recommend", generated_model, "--user", "u0001", "-k", k))
    assert line == f"error: k must be a positive whole number, got {k}"


@pytest.mark.parametrize(("ks", "message"),
                         [("0,10", "positive cut-offs"), ("ten", "cut-offs like 10,20")])
def test_evaluate_refuses_bad_cut_offs(capsys: Capsys, generated: Path, generated_model: Path,
                                       ks: str, message: str) -> None:
    result = _run(capsys, "evaluate", generated_model, generated / "test.csv", "--k", ks)
    line = _user_error(result)
    assert message in line and repr(ks) in line


def test_recommend_needs_users(capsys: Capsys, generated_model: Path) -> None:
    assert "name the users" in _user_error(_run(capsys, "recommend", generated_model))


def test_damaged_catalogue_is_refused_by_the_cli(capsys: Capsys, generated_model: Path,
                                                 tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(generated_model, copy)
    data = bytearray((copy / "catalogue.safetensors").read_bytes())
    data[-10] ^= 0x01
    (copy / "catalogue.safetensors").write_bytes(bytes(data))
    result = _run(capsys, "recommend", copy, "--user", "u0001")
    assert result.code == 2 and "Traceback" not in result.err
    assert "catalogue.safetensors does not match the SHA-256 fingerprint" in result.err


def test_explain_writes_shapley_values_per_recommended_item(capsys: Capsys, generated_model: Path,
                                                            tmp_path: Path) -> None:
    who = pd.DataFrame({"user": ["u0005", "u0010", "nobody"]})
    who.to_csv(tmp_path / "who.csv", index=False)
    result = _run(capsys, "explain", generated_model, tmp_path / "who.csv", "--out",
                  tmp_path / "why")
    assert result.code == 0, result.err
    values = pd.read_csv(tmp_path / "why" / "contributions.csv", dtype={"user": str, "item": str})
    summary = json.loads((tmp_path / "why" / "contributions.json").read_text())
    rec = load(generated_model, verbose=False)
    assert sorted(rec.model_.content_modalities) == ["image", "tabular", "title"]
    players = ["behaviour", "social", "attributes", *rec.model_.content_modalities]
    assert summary["players"] == players
    assert list(values.columns) == ["user", "rank", "item", "score", "base", *players]
    assert values["user"].tolist() == ["u0005"] * 10 + ["u0010"] * 10  # not the unknown user
    assert summary["users"] == 2 and summary["pairs"] == 20
    efficiency = values[players].sum(axis=1) - (values["score"] - values["base"])
    np.testing.assert_allclose(efficiency, 0.0, atol=1e-5)
    assert values["item"].tolist() == rec.recommend(["u0005", "u0010"], k=10)["item"].tolist()
    for player in players:
        assert summary["mean_abs"][player] == pytest.approx(values[player].abs().mean(), rel=1e-9)
        assert player in result.out


def test_explain_of_unknown_users_only(capsys: Capsys, generated_model: Path,
                                       tmp_path: Path) -> None:
    pd.DataFrame({"user": ["nobody"]}).to_csv(tmp_path / "who.csv", index=False)
    result = _run(capsys, "explain", generated_model, tmp_path / "who.csv", "--out", tmp_path / "x")
    assert "none of these users is known to the model" in _user_error(result)
