"""Regression tests for edge cases found in review: tiny data, rare classes, bad settings,
resuming with other settings, prediction alignment with skipped records, empty tabular rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfuse.cli.main import main
from mmfuse.data.preprocess import PreprocessConfig, Preprocessor
from mmfuse.data.readers import read_table
from mmfuse.data.schema import infer_schema
from mmfuse.errors import MmfuseError
from mmfuse.estimators import MultimodalClassifier, MultimodalRegressor

FAST = {"epochs": 1, "dim": 16, "num_threads": 1, "verbose": False}


def _frame(labels: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(labels)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "label": list(labels)})


def test_tiny_data_with_many_classes_trains_without_stratifying() -> None:
    clf = MultimodalClassifier(**FAST).fit(_frame("aaabbbcccc"), target="label")
    assert clf.n_train_ + clf.n_valid_ == 10


@pytest.mark.parametrize("seed", range(8))
def test_a_single_record_class_never_breaks_the_fit(seed: int) -> None:
    clf = MultimodalClassifier(**{**FAST, "seed": seed}).fit(_frame("a" * 15 + "b" * 14 + "c"), target="label")
    assert list(clf.classes_) == ["a", "b", "c"]


def test_invalid_settings_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.csv"
    _frame("ab" * 10).to_csv(data, index=False)
    for extra in (["--dim", "50", "--fusion", "attention"], ["--lr", "-1"], ["--dim", "0"], ["--image-size", "0"]):
        code = main(["fit", str(data), "--target", "label", "--out", str(tmp_path / "m"), "--quiet", *extra])
        err = capsys.readouterr().err
        assert code == 2, extra
        assert "Traceback" not in err and "error:" in err


def test_resume_with_other_settings_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmfuse.training import trainer as trainer_module

    data = tmp_path / "d.csv"
    _frame("ab" * 20).to_csv(data, index=False)
    out = tmp_path / "m"
    args = ["fit", str(data), "--target", "label", "--out", str(out), "--quiet", "--threads", "1",
            "--epochs", "3", "--patience", "0"]
    real_save = trainer_module.save_checkpoint

    def interrupt_after_epoch_1(folder, model, best, optimizer, state):  # type: ignore[no-untyped-def]
        real_save(folder, model, best, optimizer, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", interrupt_after_epoch_1)
    assert main([*args, "--dim", "16"]) == 130
    monkeypatch.undo()
    assert (out / "checkpoint" / "state.json").exists()
    assert main([*args, "--dim", "16", "--batch-size", "8", "--resume"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert main([*args, "--dim", "32", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "different model" in err and "Traceback" not in err
    assert main([*args, "--dim", "16", "--resume"]) == 0


def test_predict_keeps_one_entry_per_input_row_when_skipping(tmp_path: Path) -> None:
    train = _frame("ab" * 20)
    clf = MultimodalClassifier(**FAST, on_bad_record="skip").fit(train, target="label")
    test = train.drop(columns="label").head(5).astype({"x": object})
    test.loc[2, "x"] = "oops"
    proba = clf.predict_proba(test)
    assert proba.shape == (5, 2) and np.isnan(proba[2]).all() and not np.isnan(proba[[0, 1, 3, 4]]).any()
    labels = clf.predict(test)
    assert labels[2] is None and set(labels[[0, 1, 3, 4]]) <= {"a", "b"}
    reg = MultimodalRegressor(**FAST, on_bad_record="skip").fit(
        train.assign(label=np.arange(40) * 0.5), target="label"
    )
    values = reg.predict(test)
    assert len(values) == 5 and np.isnan(values[2]) and np.isfinite(values[[0, 1, 3, 4]]).all()


def test_a_record_with_every_tabular_cell_empty_lacks_the_tabular_modality() -> None:
    frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0], "c": ["u", None, "v", "u"], "label": list("abab")})
    table = read_table(frame)
    schema = infer_schema(frame, "label", kinds="c=categorical")
    pre = Preprocessor(schema, PreprocessConfig(), "classification").fit(table)
    enc = pre.transform(table, verbose=False)
    assert enc.mask["tabular"].tolist() == [True, False, True, True]


def test_preprocess_config_rejects_non_positive_sizes() -> None:
    with pytest.raises(MmfuseError, match="image_size must be at least 1"):
        PreprocessConfig(image_size=0)
