"""scikit-learn's estimator contract for real: fit(X, y), tags, clone, cross_val_score,
GridSearchCV and Pipeline on a small multimodal DataFrame; base_dir for relative paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import mmfuse
from mmfuse.errors import MmfuseError

QUICK = {"epochs": 1, "dim": 8, "num_threads": 1, "verbose": False, "pretrained": False}


@pytest.fixture
def xy(demo_csv: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The demo table as (X, y), media paths absolute, ``score`` (a second target) dropped."""
    frame = pd.read_csv(demo_csv)
    for column in ("image", "audio", "video"):
        frame[column] = [str(demo_csv.parent / p) if isinstance(p, str) else p for p in frame[column]]
    return frame.drop(columns=["label", "score", "id"], errors="ignore"), frame["label"]


def test_fit_x_y_predict_and_score(xy: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = xy
    clf = mmfuse.MultimodalClassifier(**QUICK).fit(X, y)
    assert clf.schema_.target == "label"  # the Series' name
    assert len(clf.predict(X)) == len(X)
    assert 0.0 <= clf.score(X, y) <= 1.0
    assert clf.score(X, y) == clf.score(X.assign(label=y.to_numpy()))


def test_fit_with_an_unnamed_array(xy: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = xy
    clf = mmfuse.MultimodalClassifier(**QUICK).fit(X, y.to_numpy())
    assert clf.schema_.target == "target"
    assert set(clf.classes_) == set(y)


def test_fit_refuses_mismatched_lengths(xy: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = xy
    with pytest.raises(MmfuseError, match=f"X has {len(X)} rows but y has {len(X) - 1}"):
        mmfuse.MultimodalClassifier(**QUICK).fit(X, y.iloc[1:])
    with pytest.raises(MmfuseError, match="fit needs the targets"):
        mmfuse.MultimodalClassifier(**QUICK).fit(X)


def test_tags_and_clone() -> None:
    clf, reg = mmfuse.MultimodalClassifier(epochs=3), mmfuse.MultimodalRegressor()
    assert is_classifier(clf) and not is_regressor(clf)
    assert is_regressor(reg) and not is_classifier(reg)
    copy = clone(clf)
    assert copy is not clf and copy.get_params() == clf.get_params()


def test_cross_val_score(xy: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = xy
    scores = cross_val_score(mmfuse.MultimodalClassifier(**QUICK), X, y, cv=2)
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))


def test_grid_search_keeps_the_better_fusion(xy: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = xy
    search = GridSearchCV(mmfuse.MultimodalClassifier(**QUICK), {"fusion": ["concat", "mean"]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["fusion"] in ("concat", "mean")
    assert search.best_estimator_.model_config_.fusion == search.best_params_["fusion"]
    assert len(search.predict(X)) == len(X)


def test_pipeline_with_a_column_selector(xy: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = xy
    keep = ["image", "review", "income"]
    pipe = Pipeline([("select", FunctionTransformer(lambda d: d[keep])),
                     ("model", mmfuse.MultimodalClassifier(**QUICK))])
    pipe.fit(X, y)
    assert set(pipe.named_steps["model"].schema_.kinds) == set(keep)
    assert len(pipe.predict(X)) == len(X)


def test_relative_paths_of_a_dataframe_resolve_against_base_dir(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.read_csv(demo_csv).drop(columns=["score"])  # relative media paths
    monkeypatch.chdir(tmp_path)  # not the data's folder
    with pytest.raises(MmfuseError, match="file not found"):
        mmfuse.MultimodalClassifier(**QUICK).fit(frame, target="label")
    clf = mmfuse.MultimodalClassifier(**QUICK, base_dir=str(demo_csv.parent)).fit(frame, target="label")
    assert len(clf.predict(frame)) == len(frame)
    assert os.getcwd() == str(tmp_path)
