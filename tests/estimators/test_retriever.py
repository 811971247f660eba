"""MultimodalRetriever on a generated image-caption dataset (80 images x 2 captions) with
from-scratch towers: training, the leak-free validation split, save/load, indexing, search,
zero-shot labels and the errors of each.

One model is fitted for the module (read-only below: tests that need to change a model load
their own copy from its directory).
"""

from __future__ import annotations

import json

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmfuse.data.readers import read_table
from mmfuse.datasets import make_paired_dataset
from mmfuse.errors import MmfuseError
from mmfuse.estimators import MultimodalRetriever, load
from mmfuse.models.retrieval import build_retrieval_model
from mmfuse.retrieval.index import VectorIndex

N_ITEMS = 80
EMBED_DIM = 32
FAST = {
    "epochs": 15, "patience": 15, "dim": 32, "embed_dim": EMBED_DIM, "batch_size": 32,
    "lr": 3e-3, "num_threads": 1, "verbose": False, "seed": 0,
}  # fmt: skip
DIRECTIONS = {"image->caption", "caption->image"}
METRICS = {"R@1", "R@5", "R@10", "MedR", "mAP"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.csv of 80 images with 2 captions each (never modified)."""
    return make_paired_dataset(
        tmp_path_factory.mktemp("pairs"), n_items=N_ITEMS, captions_per_item=2, seed=0
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retriever") / "model"


@pytest.fixture(scope="module")
def fitted(pairs: Path, model_dir: Path) -> MultimodalRetriever:
    """The module's model, saved to ``model_dir`` (read-only)."""
    return MultimodalRetriever(pair="image,caption", **FAST).fit(pairs, out_dir=model_dir)


@pytest.fixture(scope="module")
def image_index(fitted: MultimodalRetriever, pairs: Path, model_dir: Path) -> Path:
    """Index directory of the image column, built by the module's model."""
    out = model_dir.parent / "images-index"
    fitted.index(pairs, "image", out_dir=out)
    return out


@pytest.fixture(scope="module")
def valid_csv(fitted: MultimodalRetriever, pairs: Path) -> Path:
    """The rows the fit held out for validation, as a CSV next to data.csv."""
    _, valid = fitted.validation_split(read_table(pairs))
    path = pairs.parent / "valid.csv"
    valid.df.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------- training
def test_training_lowers_the_loss(fitted: MultimodalRetriever) -> None:
    history = fitted.history_
    assert len(history) == FAST["epochs"]
    assert {"train_loss", "valid_loss", "valid_recall_mean"} <= set(history[0])
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert min(h["valid_loss"] for h in history) < history[0]["valid_loss"]
    assert fitted.train_config_.grad_clip == 1.0  # from-scratch towers keep gradient clipping


def test_metrics_cover_both_directions(fitted: MultimodalRetriever) -> None:
    assert set(fitted.metrics_) == DIRECTIONS
    for direction, m in fitted.metrics_.items():
        assert set(m) == METRICS, direction
        assert 0 <= m["R@1"] <= m["R@5"] <= m["R@10"] <= 1
        assert 0 < m["mAP"] <= 1
        assert m["MedR"] >= 1


@pytest.mark.parametrize("pair", ["image,caption", "caption,image"])
def test_validation_split_keeps_each_image_on_one_side(pairs: Path, pair: str) -> None:
    table = read_table(pairs)
    train, valid = MultimodalRetriever(pair=pair).validation_split(table)
    assert len(train.df) + len(valid.df) == len(table.df)
    assert set(train.df.index).isdisjoint(valid.df.index)
    assert 0.1 < len(valid.df) / len(table.df) < 0.35
    # an image (the side that repeats: two captions each) never straddles the split, whichever
    # side of the pair it is on
    assert set(train.df["image"]).isdisjoint(valid.df["image"])


def test_metrics_are_measured_on_the_held_out_rows(
    fitted: MultimodalRetriever, valid_csv: Path, pairs: Path, model_dir: Path
) -> None:
    assert fitted.n_valid_ == len(pd.read_csv(valid_csv))
    assert fitted.n_train_ + fitted.n_valid_ == 2 * N_ITEMS
    # the default refits on every pair for the chosen number of epochs; metrics_ stay held out
    # refit length: the longest training within one standard error of the best validation score
    scores = {int(h["epoch"]): h["valid_recall_mean"] for h in fitted.history_}
    top = max(scores.values())
    margin = (top * (1 - top) / fitted.n_valid_) ** 0.5
    assert fitted.refit_epochs_ == max(e for e, v in scores.items() if v >= top - margin)
    assert fitted.refit_epochs_ >= max(scores, key=lambda e: scores[e])
    assert "refit on all" in json.loads((model_dir / "metrics.json").read_text())["note"]
    unrefit = MultimodalRetriever(pair="image,caption", refit=False, **FAST).fit(pairs)
    assert unrefit.refit_epochs_ == 0
    assert unrefit.evaluate(valid_csv) == unrefit.metrics_


def mean_r1(metrics: dict[str, dict[str, float]]) -> float:
    return float(np.mean([metrics[d]["R@1"] for d in DIRECTIONS]))


def test_training_beats_chance_and_the_untrained_model(
    fitted: MultimodalRetriever, valid_csv: Path
) -> None:
    n_images = pd.read_csv(valid_csv)["image"].nunique()
    chance = (
        1 / n_images
    )  # R@1 of a random ranking, either direction (2 of 2 * n captions relevant)
    untrained = copy.copy(fitted)
    torch.manual_seed(0)
    specs = {
        m: s
        for m, s in fitted.preprocessor_.input_specs().items()
        if m in fitted.model_config_.pair
    }
    untrained.model_ = build_retrieval_model(fitted.model_config_, specs).eval()
    before = untrained.evaluate(valid_csv)
    after = fitted.metrics_
    for direction in DIRECTIONS:
        assert after[direction]["R@1"] >= 4 * chance, direction
        assert after[direction]["mAP"] > before[direction]["mAP"], direction
    assert mean_r1(after) >= mean_r1(before) + 0.2


def test_at_least_four_items_are_needed(tmp_path: Path) -> None:
    csv = make_paired_dataset(tmp_path, n_items=3, captions_per_item=2, seed=1)
    with pytest.raises(MmfuseError, match="at least 4 distinct .image. values"):
        MultimodalRetriever(pair="image,caption", **FAST).fit(csv)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("image", "--pair needs two different columns"),
        ("image,image", "--pair needs two different columns"),
        (None, "--pair needs two different columns"),
        ("image,nope", "unknown column 'nope'.*image, caption, item"),
        ("image,item", "'item' is numeric; a retrieval side must be one of: image, text"),
    ],
)
def test_bad_pair_is_refused(pairs: Path, pair: str | None, message: str) -> None:
    with pytest.raises(MmfuseError, match=message):
        MultimodalRetriever(pair=pair, **FAST).fit(pairs)


# ------------------------------------------------------------------ save / encode
def test_save_and_load_give_identical_embeddings(
    fitted: MultimodalRetriever, pairs: Path, model_dir: Path
) -> None:
    again = load(model_dir)
    assert isinstance(again, MultimodalRetriever)
    assert again.model_config_ == fitted.model_config_
    assert again.metrics_ == fitted.metrics_
    assert again.fingerprint_ == fitted.fingerprint_
    for column in ("image", "caption"):
        mine, theirs = fitted.encode(pairs, column), again.encode(pairs, column)
        assert mine.shape == (2 * N_ITEMS, EMBED_DIM)
        np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(fitted.encode(pairs, "image"), fitted.encode(pairs, "caption"))


def test_encode_refuses_a_column_no_tower_embeds(fitted: MultimodalRetriever, pairs: Path) -> None:
    with pytest.raises(MmfuseError, match="embeds image and caption, not 'item'"):
        fitted.encode(pairs, "item")


def test_predict_points_to_search_and_zero_shot(fitted: MultimodalRetriever, pairs: Path) -> None:
    with pytest.raises(MmfuseError, match="zero_shot"):
        fitted.predict(pairs)


# ------------------------------------------------------------------ index / search
def test_each_repeated_image_is_indexed_once(
    fitted: MultimodalRetriever, image_index: Path, pairs: Path
) -> None:
    index = VectorIndex.load(image_index)
    images = pd.read_csv(pairs)["image"]
    assert len(index) == N_ITEMS
    assert index.dim == EMBED_DIM
    assert sorted(index.metadata["value"]) == sorted(images.unique())
    assert index.info["tower"] == "image"
    assert index.info["model_fingerprint"] == fitted.fingerprint_


def test_text_query_ranks_the_image_of_its_caption_near_the_top(
    fitted: MultimodalRetriever, image_index: Path, pairs: Path
) -> None:
    index = VectorIndex.load(image_index)
    df = pd.read_csv(pairs).drop_duplicates("image")
    ranks = []
    for image, caption in zip(df["image"], df["caption"]):
        hits = fitted.search(index, caption, k=N_ITEMS)
        assert list(hits["rank"][:3]) == [1, 2, 3]
        assert (np.diff(hits["score"].to_numpy()) <= 1e-6).all()  # best first
        ranks.append(int(hits.loc[hits["value"] == image, "rank"].iloc[0]))
    assert np.median(ranks) <= 8  # a random ranking: about 40 of 80
    assert np.mean(np.asarray(ranks) <= 10) >= 0.7


def test_image_query_finds_itself_first(
    fitted: MultimodalRetriever, image_index: Path, pairs: Path
) -> None:
    for name in ("images/0003.png", "images/0042.png"):
        hits = fitted.search(image_index, str(pairs.parent / name), k=5)
        assert len(hits) == 5
        assert hits["value"].iloc[0] == name
        assert hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-4)
        assert {"rank", "score", "row", "value", "image", "caption", "item"} <= set(hits.columns)


def test_same_modality_text_search_in_a_caption_index(
    fitted: MultimodalRetriever, pairs: Path
) -> None:
    df = pd.read_csv(pairs)
    index = fitted.index(pairs, "caption")
    assert len(index) == df["caption"].nunique()
    assert index.info["tower"] == "caption"
    caption = df["caption"].iloc[7]
    hits = fitted.search(index, caption, k=3)
    assert hits["value"].iloc[0] == caption
    assert hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-4)


def test_append_adds_rows_of_the_same_tower(
    fitted: MultimodalRetriever, pairs: Path, tmp_path: Path
) -> None:
    df = pd.read_csv(pairs)
    first, second = pairs.parent / "first.csv", pairs.parent / "second.csv"
    df[df["item"] < 30].to_csv(first, index=False)
    df[df["item"] >= 30].to_csv(second, index=False)
    out = tmp_path / "index"
    assert len(fitted.index(first, "image", out_dir=out)) == 30
    assert len(fitted.index(second, "image", out_dir=out, append=True)) == N_ITEMS
    on_disk = VectorIndex.load(out)
    assert len(on_disk) == N_ITEMS
    assert sorted(on_disk.metadata["value"]) == sorted(df["image"].unique())
    hits = fitted.search(on_disk, str(pairs.parent / "images/0055.png"), k=1)
    assert hits["value"].iloc[0] == "images/0055.png"  # an appended row is found
    with pytest.raises(MmfuseError, match="holds 'image' vectors"):
        fitted.index(second, "caption", out_dir=out, append=True)
    assert len(VectorIndex.load(out)) == N_ITEMS  # the refused append left it as it was
    with pytest.raises(MmfuseError, match="--append needs an existing index"):
        fitted.index(second, "image", out_dir=tmp_path / "nothing-here", append=True)


def test_an_index_of_another_model_is_refused(
    fitted: MultimodalRetriever, image_index: Path, pairs: Path, model_dir: Path, tmp_path: Path
) -> None:
    other = load(model_dir)
    with torch.no_grad():
        other.model_.projections["image"].weight.add_(0.01)
    other.save(tmp_path / "other")
    assert other.fingerprint_ != fitted.fingerprint_
    with pytest.raises(
        MmfuseError, match="built by another model .*rebuild it with `mmfuse index`"
    ):
        other.search(image_index, "a big red circle on a dark background")
    with pytest.raises(MmfuseError, match="built by another model"):
        other.index(pairs, "image", out_dir=image_index, append=True)
    assert len(VectorIndex.load(image_index)) == N_ITEMS


def test_a_refitted_model_is_another_model(image_index: Path, pairs: Path, model_dir: Path) -> None:
    refit = load(model_dir).set_params(epochs=1, seed=1)
    refit.fit(pairs)  # new weights, not saved: the fingerprint of model_dir no longer applies
    with pytest.raises(MmfuseError, match="built by another model"):
        refit.search(image_index, "a big red circle on a dark background")
    assert refit.index(pairs, "image").info["model"] is None


def test_an_index_of_another_width_is_refused(fitted: MultimodalRetriever) -> None:
    vectors = np.eye(16, dtype=np.float32)
    index = VectorIndex.build(vectors, None, {"tower": "image"})
    with pytest.raises(MmfuseError, match="16-d vectors but this model embeds 32-d"):
        fitted.search(index, "a red circle")


def test_queries_that_cannot_be_embedded(
    fitted: MultimodalRetriever, image_index: Path, model_dir: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "x.png"
    garbage.write_bytes(b"this is not a PNG file")
    with pytest.raises(MmfuseError, match="cannot decode image"):
        fitted.search(image_index, str(garbage))
    skipping = load(model_dir).set_params(on_bad_record="skip", verbose=False)
    with pytest.raises(MmfuseError, match="cannot decode image"):
        skipping.search(image_index, str(garbage))
    for empty in ("", "   "):
        with pytest.raises(MmfuseError, match="the query is empty"):
            fitted.search(image_index, empty)
    with pytest.raises(MmfuseError, match="query file not found"):
        fitted.search(image_index, str(tmp_path / "missing.png"))
    with pytest.raises(MmfuseError, match="unknown --modality 'smell'"):
        fitted.search(image_index, "a red circle", modality="smell")


# ---------------------------------------------------------------------- zero-shot
def test_zero_shot_scores_every_record(fitted: MultimodalRetriever, pairs: Path) -> None:
    labels = ["red", "blue", "green"]
    out = fitted.zero_shot(pairs, labels, prompt="a {} shape")
    df = pd.read_csv(pairs)
    assert len(out) == len(df)
    assert list(out["row"]) == list(df.index)
    scores = out[[f"score_{lab}" for lab in labels]].to_numpy()
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-5)
    assert (scores >= 0).all()
    assert list(out["prediction"]) == [labels[i] for i in scores.argmax(1)]
    with pytest.raises(MmfuseError, match="at least two labels"):
        fitted.zero_shot(pairs, ["red", " "])
    with pytest.raises(MmfuseError, match="must contain"):
        fitted.zero_shot(pairs, labels, prompt="a photo")


@pytest.fixture(scope="module")
def two_views(pairs: Path) -> Path:
    """Image-image pairs: each image with itself as the second view."""
    df = pd.read_csv(pairs).drop_duplicates("image").head(24)
    path = pairs.parent / "views.csv"
    pd.DataFrame({"image": df["image"], "view": df["image"]}).to_csv(path, index=False)
    return path


def test_a_model_without_a_text_tower_refuses_labels_and_text(two_views: Path) -> None:
    est = MultimodalRetriever(pair="image,view", **{**FAST, "epochs": 1, "dim": 8, "embed_dim": 8})
    est.fit(two_views)
    with pytest.raises(MmfuseError, match="zero-shot labels need a text tower"):
        est.zero_shot(two_views, ["red", "blue"])
    index = est.index(two_views, "view")
    assert index.info["tower"] == "view"
    with pytest.raises(MmfuseError, match="a text query cannot be embedded"):
        est.search(index, "a red circle")
    # an image query against the "view" collection goes through the other tower, "image"
    query = est.embed_query(str(two_views.parent / "images/0005.png"), "view")
    row = list(pd.read_csv(two_views)["image"]).index("images/0005.png")
    np.testing.assert_allclose(query[0], est.encode(two_views, "image")[row], atol=1e-6)
    assert not np.allclose(query[0], est.encode(two_views, "view")[row], atol=1e-3)
    assert len(est.search(index, str(two_views.parent / "images/0005.png"), k=3)) == 3


# --------------------------------------------------------------------- pretrained
def test_pretrained_towers_fit_save_and_search(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The one test with pretrained encoders (frozen EfficientNet and MiniLM): 16 images."""
    from mmfuse.pretrained import BACKBONES

    for name in ("efficientnet-lite0", "minilm"):
        if BACKBONES[name].missing():
            pytest.skip(f"{name} is not installed")
    monkeypatch.setenv("MMFUSE_PRETRAINED", "1")
    csv = make_paired_dataset(tmp_path / "data", n_items=16, captions_per_item=2, seed=2)
    est = MultimodalRetriever(pair="image,caption", **{**FAST, "epochs": 3, "embed_dim": 16})
    est.fit(csv, out_dir=tmp_path / "model")
    assert est.model_config_.encoders == {"image": "efficientnet-lite0", "caption": "minilm"}
    # frozen networks: "auto" trained both projections and kept the better on validation
    assert set(est.projection_scores_) == {"linear", "mlp"}
    assert est.projection_scores_[est.projection_] == max(est.projection_scores_.values())
    adapters = {m: est.model_config_.encoder_hparams.get(m, {}).get("adapter", "mlp") for m in ("image", "caption")}
    assert set(adapters.values()) == {"none" if est.projection_ == "linear" else "mlp"}
    recorded = json.loads((tmp_path / "model" / "metrics.json").read_text())["projection"]
    assert recorded == {"chosen": est.projection_, "valid_recall_mean": est.projection_scores_}
    assert not list((tmp_path / "model").glob("checkpoint*"))
    assert est.train_config_.grad_clip == 0.0  # only projections of cached features train
    again = load(tmp_path / "model")
    assert again.projection_ == est.projection_
    for column in ("image", "caption"):
        np.testing.assert_allclose(again.encode(csv, column), est.encode(csv, column), atol=1e-5)
    index = again.index(csv, "image")
    assert len(index) == 16
    hits = again.search(index, str(csv.parent / "images/0004.png"), k=2)
    assert hits["value"].iloc[0] == "images/0004.png"
    assert len(again.search(index, "a small blue square on a light background", k=3)) == 3


def test_refit_length_is_the_longest_training_within_one_standard_error() -> None:
    from mmfuse.estimators.retrieval_training import refit_epochs

    history = [{"epoch": e, "valid_recall_mean": v} for e, v in enumerate([0.5, 0.9, 0.88, 0.7, 0.86], 1)]
    # best 0.9, standard error sqrt(0.9 * 0.1 / 100) = 0.03: epochs 2 and 3 qualify, 5 does not
    assert refit_epochs(history, 100) == 3
    assert refit_epochs(history, 10_000) == 2  # a large validation set: only the best


def test_projection_choice_prefers_the_better_validation_score_then_linear() -> None:
    from mmfuse.estimators.retrieval_training import best_projection

    def history(*scores: float) -> list[dict[str, float]]:
        return [{"epoch": e, "valid_recall_mean": v} for e, v in enumerate(scores, 1)]

    assert best_projection({"linear": history(0.5, 0.8, 0.7), "mlp": history(0.6, 0.79)}) == "linear"
    assert best_projection({"linear": history(0.5, 0.8), "mlp": history(0.81, 0.6)}) == "mlp"
    assert best_projection({"linear": history(1.0), "mlp": history(1.0)}) == "linear"  # a tie


def test_linear_projection_feeds_the_network_features_to_one_linear_map() -> None:
    from mmfuse.models.retrieval import RetrievalConfig, build_retrieval_model
    from mmfuse.types import InputSpec

    specs = {
        "image": InputSpec("image", (1440,), backbone="efficientnet-lite0", features=True),
        "caption": InputSpec("text", (384,), backbone="minilm", features=True),
    }
    linear = {m: {"adapter": "none"} for m in specs}
    config = RetrievalConfig(("image", "caption"), {"image": "efficientnet-lite0", "caption": "minilm"},
                             dim=32, embed_dim=8, encoder_hparams=linear)  # fmt: skip
    model = build_retrieval_model(config, specs)
    assert model.projections["image"].in_features == 1440 and model.projections["caption"].in_features == 384
    trainable = {n for n, p in model.named_parameters()}
    assert trainable == {"log_scale", "projections.image.weight", "projections.image.bias",
                         "projections.caption.weight", "projections.caption.bias"}  # fmt: skip
    with pytest.raises(MmfuseError, match="unknown adapter 'wide'"):
        build_retrieval_model(RetrievalConfig(("image", "caption"), config.encoders, encoder_hparams={
            "image": {"adapter": "wide"}}), specs)  # fmt: skip


def test_an_unknown_projection_is_refused(pairs: Path) -> None:
    with pytest.raises(MmfuseError, match="unknown projection 'deep'; choose one of: auto, linear, mlp"):
        MultimodalRetriever(pair="image,caption", projection="deep", **FAST).fit(pairs)


def test_a_column_is_embedded_a_chunk_at_a_time_as_in_one_piece(
    fitted: MultimodalRetriever, pairs: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmfuse.estimators import streaming

    table = read_table(pairs)
    table.df.loc[table.df.index[[3, 11]], "image"] = "no-such-file.png"
    whole, whole_enc = fitted.encode_table(table, "image", on_bad_record="skip")
    monkeypatch.setattr(streaming, "chunk_rows", lambda specs: 5)
    chunked, chunked_enc = fitted.encode_table(table, "image", on_bad_record="skip")
    assert np.array_equal(chunked, whole) and np.array_equal(chunked_enc.rows, whole_enc.rows)
    assert len(chunked) == len(table.df) - 2 and not chunked_enc.inputs
    assert [r.row for r in chunked_enc.rejected] == [3, 11]
    with pytest.raises(MmfuseError, match=r"(?s)2 record\(s\).*row 3.*row 11"):
        fitted.encode_table(table, "image", on_bad_record="raise")
