"""The sklearn-style facades end to end on the 60-record demo dataset (tests/conftest.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import mmfuse
from mmfuse import MultimodalClassifier, MultimodalRegressor
from mmfuse.errors import MmfuseError

FAST = {
    "epochs": 2,
    "dim": 16,
    "verbose": False,
    "num_threads": 1,
    "features": ["image", "review", "income", "region"],
}


@pytest.fixture(scope="module")
def fitted(demo_csv: Path) -> MultimodalClassifier:
    """One classifier fitted on the demo data, shared by the read-only tests below."""
    return MultimodalClassifier(**FAST).fit(demo_csv, target="label")


@pytest.fixture(scope="module")
def demo_frame(demo_csv: Path) -> pd.DataFrame:
    return mmfuse.read_table(demo_csv).df


def test_fit_returns_self_and_sets_learned_state(demo_csv: Path) -> None:
    clf = MultimodalClassifier(**FAST)
    assert clf.fit(demo_csv, target="label") is clf
    for name in ("model_", "schema_", "preprocessor_", "history_", "metrics_", "rejected_"):
        assert hasattr(clf, name), name
    assert clf.schema_.modalities() == {"image": "image", "review": "text", "tabular": "tabular"}
    assert clf.schema_.kinds == {
        "image": "image",
        "review": "text",
        "income": "numeric",
        "region": "categorical",
    }
    assert len(clf.history_) == 2
    assert clf.n_train_ + clf.n_valid_ == 60 and clf.n_valid_ == 12
    assert clf.rejected_ == []
    assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= set(clf.metrics_)


def test_init_only_stores_parameters() -> None:
    clf = MultimodalClassifier(fusion="no such fusion", epochs=-1)  # validated in fit, not here
    assert clf.fusion == "no such fusion" and clf.epochs == -1
    assert not hasattr(clf, "model_")


def test_predict_length_order_and_classes(
    fitted: MultimodalClassifier, demo_frame: pd.DataFrame, demo_csv: Path
) -> None:
    np.testing.assert_array_equal(fitted.classes_, ["negative", "positive"])
    proba = fitted.predict_proba(demo_csv)
    assert proba.shape == (60, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    labels = fitted.predict(demo_csv)
    assert labels.shape == (60,)
    np.testing.assert_array_equal(labels, fitted.classes_[proba.argmax(1)])
    # Rows come back in input order: reversing the input reverses the output.
    reversed_frame = demo_frame.iloc[::-1]
    backwards = fitted.predict_proba(mmfuse.read_table(reversed_frame, base_dir=demo_csv.parent))
    np.testing.assert_allclose(backwards, proba[::-1], rtol=1e-5, atol=1e-6)
    # Predicting does not need the target column.
    unlabelled = mmfuse.read_table(demo_frame.drop(columns="label"), base_dir=demo_csv.parent)
    np.testing.assert_allclose(fitted.predict_proba(unlabelled), proba, rtol=1e-5, atol=1e-6)


def test_score_is_accuracy(fitted: MultimodalClassifier, demo_csv: Path) -> None:
    expected = float(
        (fitted.predict(demo_csv) == mmfuse.read_table(demo_csv).df["label"].to_numpy()).mean()
    )
    assert fitted.score(demo_csv) == pytest.approx(expected)
    assert fitted.evaluate(demo_csv)["accuracy"] == pytest.approx(expected)


def test_get_params_set_params_round_trip(fitted: MultimodalClassifier) -> None:
    params = fitted.get_params()
    assert params["epochs"] == 2 and params["features"] == FAST["features"]
    copy = MultimodalClassifier(**params)
    assert copy.get_params() == params
    assert copy.set_params(epochs=5, fusion="concat") is copy
    assert copy.epochs == 5 and copy.fusion == "concat"
    assert fitted.epochs == 2  # the original is untouched
    with pytest.raises(ValueError, match="unknown parameter 'epoch'; valid: fusion, level"):
        copy.set_params(epoch=3)
    cloned = clone(fitted)  # scikit-learn's own contract check
    assert cloned.get_params() == params and not hasattr(cloned, "model_")
    assert "epochs=2" in repr(copy.set_params(epochs=2))


def test_save_and_load_give_identical_predictions(
    fitted: MultimodalClassifier, demo_csv: Path, tmp_path: Path
) -> None:
    fitted.save(tmp_path / "model")
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocess.json",
        "metrics.json",
        "history.csv",
    } <= names
    assert not any(n.endswith((".pt", ".pkl", ".pickle", ".bin")) for n in names)
    loaded = mmfuse.load(tmp_path / "model")
    assert type(loaded) is MultimodalClassifier
    np.testing.assert_array_equal(loaded.predict_proba(demo_csv), fitted.predict_proba(demo_csv))
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.metrics_ == pytest.approx(fitted.metrics_)
    assert len(loaded.history_) == len(fitted.history_)


def test_load_rejects_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(
        MmfuseError, match="is not an mmfuse model directory: config.json is missing"
    ):
        mmfuse.load(tmp_path)


def test_same_seed_same_metrics(demo_csv: Path) -> None:
    a = MultimodalClassifier(**FAST, seed=3).fit(demo_csv, target="label")
    b = MultimodalClassifier(**FAST, seed=3).fit(demo_csv, target="label")
    assert a.metrics_ == b.metrics_
    np.testing.assert_array_equal(a.predict_proba(demo_csv), b.predict_proba(demo_csv))


@pytest.mark.parametrize(
    ("level", "fusion"), [("early", "early_concat"), ("feature", "attention"), ("late", "mean")]
)
def test_every_level(demo_csv: Path, level: str, fusion: str) -> None:
    clf = MultimodalClassifier(**FAST, level=level).fit(demo_csv, target="label")
    assert (clf.model_config_.level, clf.model_config_.fusion) == (level, fusion)
    proba = clf.predict_proba(demo_csv)
    assert proba.shape == (60, 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)


def test_regression_on_the_score_column(demo_csv: Path) -> None:
    reg = MultimodalRegressor(**{**FAST, "epochs": 3}).fit(demo_csv, target="score")
    assert reg.model_config_.task == "regression" and reg.model_config_.num_outputs == 1
    assert "label" not in reg.schema_.kinds
    assert set(reg.metrics_) == {"mae", "rmse", "r2", "pearson"}
    assert math.isfinite(reg.metrics_["r2"])
    predictions = reg.predict(demo_csv)
    assert predictions.shape == (60,) and np.isfinite(predictions).all()
    scores = mmfuse.read_table(demo_csv).df["score"]
    assert scores.min() - 5 < predictions.mean() < scores.max() + 5  # back on the target's scale
    assert reg.score(demo_csv) == pytest.approx(reg.evaluate(demo_csv)["r2"])


def test_regressor_without_feature_list_never_uses_the_target(demo_csv: Path) -> None:
    reg = MultimodalRegressor(
        **{**FAST, "features": None, "kinds": "label=ignore,video=ignore,audio=ignore"}
    )
    reg.fit(demo_csv, target="score")
    assert "score" not in reg.schema_.kinds and "label" not in reg.schema_.kinds


def test_dataframe_with_absolute_paths(
    demo_frame: pd.DataFrame, demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = demo_frame.copy()
    frame["image"] = [None if pd.isna(v) else str(demo_csv.parent / v) for v in frame["image"]]
    monkeypatch.chdir(tmp_path)  # relative paths would not resolve from here
    clf = MultimodalClassifier(**FAST).fit(frame, target="label")
    assert clf.predict_proba(frame).shape == (60, 2)
    assert clf.schema_.kinds["image"] == "image"


def test_separate_validation_data(demo_csv: Path, demo_frame: pd.DataFrame) -> None:
    base = demo_csv.parent
    train = mmfuse.read_table(demo_frame.iloc[:45], base_dir=base)
    valid = mmfuse.read_table(demo_frame.iloc[45:], base_dir=base)
    clf = MultimodalClassifier(**FAST).fit(train, target="label", valid=valid)
    assert (clf.n_train_, clf.n_valid_) == (45, 15)


def test_all_columns_including_video(demo_csv: Path) -> None:
    clf = MultimodalClassifier(**{**FAST, "features": None, "epochs": 1}).fit(
        demo_csv, target="label"
    )
    # only the first 15 % of the demo clips have a (silent) audio track: too few for a modality
    assert clf.schema_.modalities() == {
        "audio": "audio", "image": "image", "review": "text", "tabular": "tabular",
        "video": "video",
    }  # fmt: skip
    assert (
        "id" in clf.schema_.ignored and "score" in clf.schema_.kinds
    )  # score is just a number here
    assert clf.predict_proba(demo_csv).shape == (60, 2)


def test_out_dir_writes_the_model_and_resume_after_the_end_changes_nothing(
    demo_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    clf = MultimodalClassifier(**FAST).fit(demo_csv, target="label", out_dir=out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metrics"] == pytest.approx(clf.metrics_)
    assert not (out / "checkpoint").exists()  # removed once the model is written
    again = MultimodalClassifier(**FAST).fit(demo_csv, target="label", out_dir=out, resume=True)
    assert again.metrics_ == clf.metrics_


def test_interrupted_fit_resumes_to_the_same_model(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmfuse.training import trainer as trainer_module

    settings = {**FAST, "epochs": 3, "patience": 0}
    full = MultimodalClassifier(**settings).fit(demo_csv, target="label")
    real_save = trainer_module.save_checkpoint

    def crash_after_epoch_2(folder, model, best, optimizer, state):
        real_save(folder, model, best, optimizer, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt

    out = tmp_path / "model"
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "save_checkpoint", crash_after_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            MultimodalClassifier(**settings).fit(demo_csv, target="label", out_dir=out)
    assert (out / "checkpoint" / "state.json").exists() and not (out / "model.safetensors").exists()
    resumed = MultimodalClassifier(**settings).fit(
        demo_csv, target="label", out_dir=out, resume=True
    )
    for history in (resumed.history_, full.history_):
        for record in history:
            record.pop("seconds")
    assert resumed.history_ == full.history_
    assert resumed.metrics_ == full.metrics_
    np.testing.assert_array_equal(resumed.predict_proba(demo_csv), full.predict_proba(demo_csv))


def test_bad_records_are_skipped_and_listed(demo_frame: pd.DataFrame, demo_csv: Path) -> None:
    frame = demo_frame.copy()
    rows = frame.index[frame["image"].notna()][:2]
    frame.loc[rows, "image"] = "images/does-not-exist.png"
    table = mmfuse.read_table(frame, base_dir=demo_csv.parent)
    with pytest.raises(MmfuseError, match="file not found"):
        MultimodalClassifier(**FAST).fit(table, target="label")
    clf = MultimodalClassifier(**FAST, on_bad_record="skip").fit(table, target="label")
    assert sorted(r.row for r in clf.rejected_) == sorted(rows.tolist())
    assert all(r.column == "image" for r in clf.rejected_)
    assert clf.n_train_ + clf.n_valid_ == 58


def test_unfitted_estimator_raises() -> None:
    clf = MultimodalClassifier()
    calls = (
        lambda: clf.predict("x.csv"),
        lambda: clf.predict_proba("x.csv"),
        lambda: clf.classes_,
        lambda: clf.save("out"),
        lambda: clf.evaluate("x.csv"),
    )
    for call in calls:
        with pytest.raises(
            MmfuseError, match="this MultimodalClassifier is not fitted yet; call fit first"
        ):
            call()
    with pytest.raises(MmfuseError, match="MultimodalRegressor is not fitted yet"):
        MultimodalRegressor().predict("x.csv")


def test_invalid_settings_fail_in_fit_with_clear_messages(demo_csv: Path) -> None:
    with pytest.raises(MmfuseError, match="unknown fusion 'tensorial'; choose one of: attention"):
        MultimodalClassifier(**FAST, fusion="tensorial").fit(demo_csv, target="label")
    with pytest.raises(MmfuseError, match="unknown target column 'lable'"):
        MultimodalClassifier(**FAST).fit(demo_csv, target="lable")
    with pytest.raises(
        MmfuseError, match="fusion 'mean' is a late-level operator, not early-level"
    ):
        MultimodalClassifier(**FAST, level="early", fusion="mean").fit(demo_csv, target="label")
