"""Served directories, fitted once per test session (read-only): a classifier of the demo data
(image, text, audio, video, numbers and categories), a regressor, a retrieval model with an
index of its images, and a recommender of a small generated catalogue with item images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mmfuse.cli.main import main

QUICK = ["--epochs", "2", "--dim", "16", "--batch-size", "32", "--threads", "1", "--quiet"]


@dataclass(frozen=True)
class Served:
    """What the serving tests run against."""

    data: Path  # the demo data folder (data.csv + media)
    classifier: Path
    regressor: Path
    retriever: Path
    pairs: Path  # the retrieval pairs' data.csv
    index: Path


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    from mmfuse.datasets import make_demo_dataset, make_paired_dataset

    root = tmp_path_factory.mktemp("served")
    data = root / "demo"
    make_demo_dataset(data, n=60, seed=0)
    common = ["--features", "image,review,audio,video,income,region", *QUICK]
    assert main(["fit", str(data), "--target", "label", "--out", str(root / "classifier"), *common]) == 0
    assert main(["fit", str(data), "--target", "score", "--task", "regression",
                 "--out", str(root / "regressor"), *common]) == 0
    pairs = make_paired_dataset(root / "pairs", n_items=24, captions_per_item=2, seed=4)
    assert main(["fit", str(pairs), "--task", "retrieval", "--pair", "image,caption",
                 "--out", str(root / "retrieval"), "--epochs", "3", "--dim", "16", "--threads", "1",
                 "--quiet"]) == 0
    assert main(["index", str(root / "retrieval"), str(pairs), "--column", "image",
                 "--out", str(root / "image_index"), "--quiet"]) == 0
    return Served(data, root / "classifier", root / "regressor", root / "retrieval", pairs,
                  root / "image_index")


@pytest.fixture(scope="session")
def recommender(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recommendation model (served as ``rec``) of a small seeded dataset with item images."""
    from mmfuse.datasets import make_recommendation_dataset

    root = tmp_path_factory.mktemp("recommend")
    data = make_recommendation_dataset(root / "data", n_users=60, n_items=40, seed=0)
    assert main(["fit", str(data / "train.csv"), "--task", "recommendation", "--user", "user",
                 "--item", "item", "--items", str(data / "items.csv"), "--social",
                 str(data / "friends.csv"), "--epochs", "2", "--threads", "1", "--quiet",
                 "--out", str(root / "rec")]) == 0
    return root / "rec"
