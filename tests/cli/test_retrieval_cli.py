"""Retrieval through the command line (``main(argv)``): fit --task retrieval, evaluate, index,
search, predict --labels, and the errors users hit (exit code 2 with a message on stderr)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.cli.main import main
from mmfuse.datasets import make_paired_dataset
from mmfuse.retrieval.index import VectorIndex

N_ITEMS = 40
EPOCHS = 20
FAST = [
    "--epochs",
    str(EPOCHS),
    "--patience",
    str(EPOCHS),
    "--dim",
    "32",
    "--batch-size",
    "32",
    "--lr",
    "0.003",
    "--threads",
    "1",
    "--quiet",
]
DIRECTIONS = {"image->caption", "caption->image"}
METRICS = {"R@1", "R@5", "R@10", "MedR", "mAP"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.csv of 40 images with 2 captions each (never modified)."""
    return make_paired_dataset(
        tmp_path_factory.mktemp("cli-pairs"), n_items=N_ITEMS, captions_per_item=2, seed=4
    )


@pytest.fixture(scope="module")
def model(pairs: Path) -> Path:
    """A retrieval model fitted once through the CLI (read-only)."""
    out = pairs.parent / "model"
    code = main(
        [
            "fit",
            str(pairs),
            "--task",
            "retrieval",
            "--pair",
            "image,caption",
            "--out",
            str(out),
            *FAST,
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def index(model: Path, pairs: Path) -> Path:
    """The image column of the dataset, indexed through the CLI (read-only)."""
    out = pairs.parent / "index"
    assert (
        main(["index", str(model), str(pairs), "--column", "image", "--out", str(out), "--quiet"])
        == 0
    )
    return out


def search_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert main(["search", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_writes_a_retrieval_model(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in (
        "config.json",
        "model.safetensors",
        "preprocess.json",
        "metrics.json",
        "history.csv",
    ):
        assert (model / name).is_file(), name
    assert not (model / "checkpoint").exists()
    config = json.loads((model / "config.json").read_text())
    assert config["estimator"] == "MultimodalRetriever"
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["task"] == "retrieval"
    assert metrics["pair"] == ["image", "caption"]
    assert set(metrics["metrics"]) == DIRECTIONS
    assert metrics["n_train"] + metrics["n_valid"] == 2 * N_ITEMS
    history = pd.read_csv(model / "history.csv")
    assert len(history) == EPOCHS
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]


def test_fit_prints_both_directions(
    pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    argv = ["fit", str(pairs), "--pair", "image,caption", "--out", str(out),
            "--epochs", "1", "--dim", "8", "--threads", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0  # --pair alone implies --task retrieval
    printed = capsys.readouterr().out
    assert "validation retrieval" in printed
    assert "image->caption" in printed and "caption->image" in printed
    assert f"model written to {out}" in printed


def test_evaluate_writes_metrics_json(
    model: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "metrics.json"
    capsys.readouterr()
    assert main(["evaluate", str(model), str(pairs), "--json", str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    # what was ranked: 80 pairs; each distinct image and caption is one item
    captions = pd.read_csv(pairs)["caption"].nunique()
    assert printed[0] == f"retrieval on {pairs}: {2 * N_ITEMS} pairs"
    assert printed[1].split()[:4] == ["direction", "queries", "gallery", "R@1"]
    assert printed[3].split()[:3] == ["image->caption", str(N_ITEMS), str(captions)]
    assert printed[4].split()[:3] == ["caption->image", str(captions), str(N_ITEMS)]
    written = json.loads(path.read_text())
    assert written["n_pairs"] == 2 * N_ITEMS
    assert written["ranked"] == {"image->caption": {"queries": N_ITEMS, "gallery": captions},
                                 "caption->image": {"queries": captions, "gallery": N_ITEMS}}
    metrics = written["metrics"]
    assert set(metrics) == DIRECTIONS
    for direction, m in metrics.items():
        assert set(m) == METRICS, direction
        assert 0 <= m["R@1"] <= m["R@5"] <= m["R@10"] <= 1
        assert m["MedR"] >= 1
    # mostly training pairs: far above a random ranking of 40 images (R@1 about 0.025)
    assert metrics["caption->image"]["R@1"] > 0.1


def test_index_holds_each_image_once(index: Path, model: Path) -> None:
    stored = VectorIndex.load(index)
    assert len(stored) == N_ITEMS
    assert stored.kind == "exact"
    assert stored.info["model"] == str(model.resolve())
    assert stored.info["tower"] == "image"


def test_search_prints_a_ranked_table(index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["search", str(index), "a big red circle on a dark background", "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:5] == ["rank", "score", "source", "row", "value"]
    rows = [line for line in lines if "images/" in line]
    assert len(rows) == 3
    assert [r.split()[0] for r in rows] == ["1", "2", "3"]


def test_search_json_finds_the_image_of_a_caption(
    index: Path, pairs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.read_csv(pairs).drop_duplicates("image")
    ranks = []
    for image, caption in zip(df["image"][:10], df["caption"][:10]):
        result = search_json(capsys, str(index), caption, "-k", str(N_ITEMS))
        assert result["query"] == caption
        hits = result["results"]
        assert [h["rank"] for h in hits] == list(range(1, N_ITEMS + 1))
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
        ranks.append(next(h["rank"] for h in hits if h["value"] == image))
    assert np.median(ranks) <= 8  # a random ranking: about 20 of 40


def test_search_with_an_image_query(
    index: Path, pairs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hits = search_json(capsys, str(index), str(pairs.parent / "images/0007.png"), "-k", "2")[
        "results"
    ]
    assert len(hits) == 2
    assert hits[0]["value"] == "images/0007.png"
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert {"caption", "item", "row"} <= set(hits[0])


def test_modality_text_searches_a_path_like_text(
    index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["search", str(index), "nothing.png"]) == 2
    assert "query file not found" in capsys.readouterr().err
    hits = search_json(capsys, str(index), "nothing.png", "--modality", "text", "-k", "4")[
        "results"
    ]
    assert len(hits) == 4


def test_index_append_and_approximate(model: Path, pairs: Path, tmp_path: Path) -> None:
    df = pd.read_csv(pairs)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    df["image"] = [str(pairs.parent / p) for p in df["image"]]  # absolute: the CSVs live elsewhere
    df[df["item"] < 25].to_csv(first, index=False)
    df[df["item"] >= 25].to_csv(second, index=False)
    out = tmp_path / "idx"
    base = ["index", str(model), "--column", "image", "--out", str(out), "--quiet"]
    assert main([*base, str(first)]) == 0
    assert len(VectorIndex.load(out)) == 25
    assert main([*base, str(second), "--append"]) == 0
    stored = VectorIndex.load(out)
    assert len(stored) == N_ITEMS
    meta = stored.metadata  # rows of two files: told apart by source and a global row id
    assert list(meta.columns[:4]) == ["row_id", "source", "row", "value"]
    assert list(meta["row_id"]) == list(range(N_ITEMS))
    assert list(meta["source"]) == [str(first)] * 25 + [str(second)] * 15
    assert meta[["source", "row"]].duplicated().sum() == 0
    assert meta["row"].duplicated().sum() > 0  # per-file rows repeat across the two files


def test_approximate_index_of_a_small_collection_is_exact_and_says_why(
    model: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """40 items are too few to measure an HNSW index's recall: exact search, stated."""
    approx = tmp_path / "hnsw"
    capsys.readouterr()
    assert main(["index", str(model), str(pairs), "--column", "image", "--out", str(approx),
                 "--approximate", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"wrote {N_ITEMS} vectors (exact index)" in out
    assert f"note: --approximate hnsw: {N_ITEMS} rows are too few to measure the recall" in out
    stored = VectorIndex.load(approx)
    assert stored.kind == "exact" and len(stored) == N_ITEMS
    header = json.loads((approx / "index.json").read_text())
    assert header["recall_at_10"] == 1.0
    assert header["parameters"]["requested_kind"] == "hnsw"
    assert "too few to measure" in header["parameters"]["fallback_reason"]


def test_predict_labels_writes_zero_shot_scores(
    model: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "zero.csv"
    labels = ["red", "blue", "green"]
    argv = [
        "predict",
        str(model),
        str(pairs),
        "--labels",
        ",".join(labels),
        "--prompt",
        "a {} shape",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 2 * N_ITEMS
    scores = frame[[f"score_{lab}" for lab in labels]].to_numpy()
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-5)
    assert set(frame["prediction"]) <= set(labels)
    assert f"wrote {2 * N_ITEMS} zero-shot predictions" in capsys.readouterr().out
    inputs = pd.read_csv(pairs)  # every input column is kept, in the input's order
    assert list(frame.columns) == ["row", *inputs.columns, "prediction", *(f"score_{lab}" for lab in labels)]
    assert list(frame["row"]) == list(range(2 * N_ITEMS))
    pd.testing.assert_frame_equal(frame[list(inputs.columns)], inputs)


# ------------------------------------------------------------------------ errors
def error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Runs argv, which must fail as a user error; returns the message."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    return err


@pytest.fixture(scope="module")
def classifier(pairs: Path) -> Path:
    """A tiny caption classifier (read-only)."""
    df = pd.read_csv(pairs)
    data = pairs.parent / "labelled.csv"
    df.assign(label=np.where(df["item"] % 2 == 0, "even", "odd"))[["caption", "label"]].to_csv(
        data, index=False
    )
    out = pairs.parent / "classifier"
    argv = ["fit", str(data), "--target", "label", "--out", str(out), "--epochs", "1", "--dim", "8",
            "--threads", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_search_on_a_missing_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in error(capsys, ["search", str(tmp_path / "no-index"), "a red circle"])


def test_search_an_index_that_records_no_model(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    VectorIndex.build(np.eye(4, dtype=np.float32)).save(tmp_path / "bare")
    assert "pass --model DIR" in error(capsys, ["search", str(tmp_path / "bare"), "a red circle"])


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query(index: Path, query: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "the query is empty" in error(capsys, ["search", str(index), query])


def test_fit_retrieval_needs_pair(
    pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = error(capsys, ["fit", str(pairs), "--task", "retrieval", "--out", str(tmp_path / "m")])
    assert "--task retrieval needs --pair" in msg
    msg = error(capsys, ["fit", str(pairs), "--task", "retrieval", "--pair", "image,caption",
                         "--target", "item", "--out", str(tmp_path / "m")])  # fmt: skip
    assert "takes no --target" in msg
    msg = error(capsys, ["fit", str(pairs), "--pair", "image", "--out", str(tmp_path / "m")])
    assert "--pair needs two different columns" in msg
    assert not (tmp_path / "m").exists()


def test_predict_labels_on_a_classifier(
    classifier: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = error(
        capsys,
        [
            "predict",
            str(classifier),
            str(pairs),
            "--labels",
            "a,b",
            "--out",
            str(tmp_path / "p.csv"),
        ],
    )
    assert "--labels is for retrieval models" in msg
    assert not (tmp_path / "p.csv").exists()


def test_index_with_a_classifier(
    classifier: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = error(
        capsys,
        ["index", str(classifier), str(pairs), "--column", "caption", "--out", str(tmp_path / "i")],
    )
    assert "not a retrieval model" in msg


def test_predict_without_labels_on_a_retrieval_model(
    model: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = error(capsys, ["predict", str(model), str(pairs), "--out", str(tmp_path / "p.csv")])
    assert "pass --labels" in msg


def test_approximate_index_measures_recall_on_held_out_rows(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """120 items: 50 are held out of the HNSW graph, searched, then inserted; the recall is shown."""
    collection = make_paired_dataset(tmp_path / "big", n_items=120, captions_per_item=1, seed=7)
    out = tmp_path / "hnsw"
    capsys.readouterr()
    assert main(["index", str(model), str(collection), "--column", "image", "--out", str(out),
                 "--approximate", "hnsw", "--quiet"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    header = json.loads((out / "index.json").read_text())
    params = header["parameters"]
    assert header["kind"] == "hnsw" and header["count"] == 120
    assert params["recall_queries"] == 50 and params["recall_measured_at_count"] == 70
    assert header["recall_at_10"] == params["recall_at_10"] is not None
    assert (
        f"recall@10 vs exact search: {params['recall_at_10']:.3f} on 50 held-out rows "
        f"(efSearch={params['efSearch']}" in printed
    )


def test_an_appended_hit_names_its_file(
    model: Path, pairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.read_csv(pairs).drop_duplicates("image")
    df["image"] = [str(pairs.parent / p) for p in df["image"]]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    df.iloc[:20].to_csv(first, index=False)
    df.iloc[20:].to_csv(second, index=False)
    out = tmp_path / "idx"
    base = ["index", str(model), "--column", "image", "--out", str(out), "--quiet"]
    assert main([*base, str(first)]) == 0 and main([*base, str(second), "--append"]) == 0
    query = df["image"].iloc[22]  # row 2 of second.csv; first.csv has a row 2 too
    hits = search_json(capsys, str(out), query, "-k", "1")["results"]
    assert (hits[0]["source"], hits[0]["row"], hits[0]["row_id"]) == (str(second), 2, 22)
    capsys.readouterr()
    assert main(["search", str(out), query, "-k", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[2:4] == [str(second), "2"]


def test_with_input_columns_keeps_unscored_rows_and_renames_clashes() -> None:
    from mmfuse.cli.retrieval import with_input_columns

    df = pd.DataFrame({"image": ["a.png", "", "c.png"], "prediction": ["x", "y", "z"]}, index=[0, 1, 3])
    scored = pd.DataFrame({"row": [0, 3], "prediction": ["cat", "dog"], "score_cat": [0.9, 0.2]})
    out = with_input_columns(df, scored)
    assert list(out.columns) == ["row", "image", "input_prediction", "prediction", "score_cat"]
    assert list(out["row"]) == [0, 1, 3]
    assert list(out["prediction"].fillna("")) == ["cat", "", "dog"]


def test_ranked_sizes_count_items_of_rows_with_both_sides() -> None:
    from mmfuse.cli.retrieval import ranked_sizes

    df = pd.DataFrame({"image": ["a", "a", "b", None, "c"], "caption": ["x", "y", "z", "w", " "]})
    assert ranked_sizes(df, ("image", "caption")) == (
        3, {"image->caption": {"queries": 2, "gallery": 3}, "caption->image": {"queries": 3, "gallery": 2}}
    )


def test_appending_to_an_index_that_records_no_sources(
    index: Path, model: Path, pairs: Path, tmp_path: Path
) -> None:
    """An index written before sources were recorded gets them for the rows appended now."""
    old = VectorIndex.load(index)
    old.metadata = old.metadata.drop(columns="source")
    old.save(tmp_path / "old")
    df = pd.read_csv(pairs).drop_duplicates("image").iloc[:3]
    df["image"] = [str(pairs.parent / p) for p in df["image"]]
    more = tmp_path / "more.csv"
    df.to_csv(more, index=False)
    argv = ["index", str(model), str(more), "--column", "image", "--out", str(tmp_path / "old"),
            "--append", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    meta = VectorIndex.load(tmp_path / "old").metadata
    assert list(meta["source"]) == ["(not recorded)"] * N_ITEMS + [str(more)] * 3
    assert list(meta["row_id"]) == list(range(N_ITEMS + 3))
