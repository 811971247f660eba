"""Retrieval metrics on hand-made similarity matrices with known ranks.

(Named test_retrieval_metrics.py: tests/evaluation/test_metrics.py already uses the basename,
and the test folders are not packages.)
"""

from __future__ import annotations

import numpy as np
import pytest

from mmfuse.errors import MmfuseError
from mmfuse.retrieval.metrics import bidirectional_metrics, dedupe_gallery, retrieval_metrics


def reference(sim: np.ndarray, query_items: list, gallery_items: list) -> dict[str, float]:
    """The same metrics by sorting each row: score descending, non-relevant first on ties."""
    gallery = np.asarray(gallery_items)
    firsts, aps = [], []
    for q, item in enumerate(query_items):
        relevant = gallery == item
        ranked = relevant[np.lexsort((relevant, -sim[q]))]
        ranks = np.flatnonzero(ranked) + 1
        firsts.append(ranks[0])
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    first = np.array(firsts)
    out = {f"R@{k}": float(np.mean(first <= k)) for k in (1, 5, 10)}
    return {**out, "MedR": float(np.median(first)), "mAP": float(np.mean(aps))}


def test_single_positive_ranks_give_exact_values() -> None:
    # relevant entry (the diagonal) ranks 1, 2 and 4
    sim = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],
            [0.8, 0.7, 0.1, 0.0],
            [0.9, 0.8, 0.1, 0.7],
        ]
    )
    out = retrieval_metrics(sim, ["a", "b", "c"], ["a", "b", "c", "d"], ks=(1, 2, 5))
    assert list(out) == ["R@1", "R@2", "R@5", "MedR", "mAP"]
    assert out["R@1"] == pytest.approx(1 / 3)
    assert out["R@2"] == pytest.approx(2 / 3)
    assert out["R@5"] == 1.0
    assert out["MedR"] == 2.0
    assert out["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)


def test_default_keys_and_r1_two_thirds() -> None:
    sim = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # third query ranks its item 2nd
    out = retrieval_metrics(sim, ["x", "y", "y"], ["x", "y"])
    assert list(out) == ["R@1", "R@5", "R@10", "MedR", "mAP"]
    assert out["R@1"] == pytest.approx(2 / 3)
    assert out["R@5"] == 1.0
    assert out["MedR"] == 1.0
    assert out["mAP"] == pytest.approx((1 + 1 + 1 / 2) / 3)


def test_multiple_positives_average_precision() -> None:
    # query 0: relevant at ranks 1 and 3 -> AP (1 + 2/3) / 2; query 1: ranks 2 and 4 -> AP 1/2
    sim = np.array(
        [
            [0.9, 0.8, 0.7, 0.1],
            [0.9, 0.8, 0.7, 0.6],
        ]
    )
    gallery = ["p", "n", "p", "n"]
    out = retrieval_metrics(sim[:1], ["p"], gallery)
    assert out["mAP"] == pytest.approx(5 / 6)
    out = retrieval_metrics(sim[1:], ["n"], gallery)
    assert out["mAP"] == pytest.approx(1 / 2)
    assert out["MedR"] == 2.0
    both = retrieval_metrics(sim, ["p", "n"], gallery)
    assert both["mAP"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert both["R@1"] == 0.5


def test_ties_are_pessimistic() -> None:
    # the relevant entry ties with two others: it ranks after both
    out = retrieval_metrics(np.array([[0.5, 0.5, 0.5]]), ["a"], ["a", "b", "c"])
    assert out["R@1"] == 0.0
    assert out["MedR"] == 3.0
    assert out["mAP"] == pytest.approx(1 / 3)
    # two relevant entries tie with one non-relevant: ranks 2 and 3
    out = retrieval_metrics(np.array([[0.5, 0.5, 0.5]]), ["a"], ["a", "a", "b"])
    assert out["MedR"] == 2.0
    assert out["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a tie below the relevant entry does not hurt it
    out = retrieval_metrics(np.array([[0.9, 0.5, 0.5]]), ["a"], ["a", "b", "c"])
    assert out["R@1"] == 1.0


def test_constant_similarity_never_scores_perfectly() -> None:
    items = ["a", "b", "c", "d"]
    out = retrieval_metrics(np.zeros((4, 4)), items, items)
    assert out == {"R@1": 0.0, "R@5": 1.0, "R@10": 1.0, "MedR": 4.0, "mAP": 0.25}


def test_matches_sorting_reference_on_random_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        gallery = list(rng.integers(0, 6, rng.integers(1, 30)))
        queries = list(rng.choice(gallery, rng.integers(1, 20)))
        sim = rng.integers(0, 3, (len(queries), len(gallery))).astype(np.float32)  # many ties
        out = retrieval_metrics(sim, queries, gallery)
        assert out == pytest.approx(reference(sim, queries, gallery))


def test_dedupe_gallery_five_captions_per_image() -> None:
    images = [f"img{i}.jpg" for i in range(3) for _ in range(5)]
    items, first_index = dedupe_gallery(images)
    assert items == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert first_index.tolist() == [0, 5, 10]
    items, first_index = dedupe_gallery(["x", "y", "x", "z", "y"])
    assert items == ["x", "y", "z"]
    assert first_index.tolist() == [0, 1, 3]


def test_bidirectional_five_captions_per_image() -> None:
    images = np.eye(3, dtype=np.float32)
    paths = [f"img{i}.jpg" for i in range(3) for _ in range(5)]  # 15 pairs
    emb_image = images.repeat(5, axis=0)  # each image once per caption
    emb_text = emb_image.copy()
    emb_text[0] = images[1]  # caption 0 (of image 0) looks like image 1
    out = bidirectional_metrics(emb_text, emb_image, None, paths, names=("text", "image"))
    t2i, i2t = out["text->image"], out["image->text"]
    # caption 0: image 1 scores 1, images 0 and 2 tie at 0 -> its image ranks 3rd
    assert t2i["R@1"] == pytest.approx(14 / 15)
    assert t2i["MedR"] == 1.0
    assert t2i["mAP"] == pytest.approx((14 + 1 / 3) / 15)
    # image 0: captions 1-4 at ranks 1-4, caption 0 tied with the 10 others -> rank 15
    # image 1: caption 0 ties with its five captions -> ranks 2..6; image 2: ranks 1..5
    ap0 = (4 + 5 / 15) / 5
    ap1 = np.mean([i / (i + 1) for i in range(1, 6)])
    assert i2t["R@1"] == pytest.approx(2 / 3)
    assert i2t["MedR"] == 1.0
    assert i2t["mAP"] == pytest.approx((ap0 + ap1 + 1) / 3)


def test_bidirectional_agrees_with_retrieval_metrics() -> None:
    rng = np.random.default_rng(1)
    images = rng.standard_normal((20, 8)).astype(np.float32)
    paths = [f"img{i}" for i in range(20) for _ in range(5)]
    emb_image = images.repeat(5, axis=0)
    emb_text = emb_image + 0.8 * rng.standard_normal(emb_image.shape).astype(np.float32)
    out = bidirectional_metrics(emb_text, emb_image, None, paths)
    items, first = dedupe_gallery(paths)
    expected = retrieval_metrics(emb_text @ emb_image[first].T, paths, items)
    assert out["A->B"] == pytest.approx(expected)
    expected = retrieval_metrics(emb_image[first] @ emb_text.T, items, paths)
    assert out["B->A"] == pytest.approx(expected)


def test_query_without_relevant_entry_raises() -> None:
    with pytest.raises(MmfuseError, match="1 of 2 queries have no relevant gallery entry.*'z'"):
        retrieval_metrics(np.zeros((2, 2)), ["a", "z"], ["a", "b"])


def test_bad_inputs_raise() -> None:
    with pytest.raises(MmfuseError, match=r"shape \(2, 2\).*expected \(3, 2\)"):
        retrieval_metrics(np.zeros((2, 2)), ["a", "b", "c"], ["a", "b"])
    with pytest.raises(MmfuseError, match="finite"):
        retrieval_metrics(np.array([[np.nan, 0.0]]), ["a"], ["a", "b"])
    with pytest.raises(MmfuseError, match="ks must be positive"):
        retrieval_metrics(np.zeros((1, 1)), ["a"], ["a"], ks=(0, 5))
    with pytest.raises(MmfuseError, match="same shape"):
        bidirectional_metrics(np.zeros((3, 2)), np.zeros((2, 2)), None, None)
    with pytest.raises(MmfuseError, match="items_b has 2 ids but there are 3"):
        bidirectional_metrics(np.zeros((3, 2)), np.zeros((3, 2)), None, ["a", "b"])
