"""Contract: every registered fusion operator exports to ONNX and ONNX Runtime matches PyTorch.

One small classifier per operator (from-scratch encoders for image, text, audio, video and
tabular columns of the demo data, prepared once and shared) is exported with its parity check
on random records; the graph then runs the demo records themselves, with their own masks and
with modalities masked out. The decision-level operators, whose regression path differs, are
also exported as regressors, and the from-scratch encoders those models do not use get a model
of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmfuse import MultimodalClassifier, MultimodalRegressor
from mmfuse.data.preprocess import Encoded
from mmfuse.data.readers import read_table
from mmfuse.estimators.pipeline import Pipeline, take_records
from mmfuse.export import OnnxModel, export_onnx
from mmfuse.export.parity import masked_copies
from mmfuse.fusion import fusion_level, list_fusions

pytest.importorskip("onnxruntime")

FAST: dict[str, Any] = {
    "epochs": 1,
    "dim": 8,
    "verbose": False,
    "num_threads": 1,
    "seed": 0,
    "batch_size": 32,
}
COLUMNS = ["image", "review", "audio", "video", "income", "region"]
TOLERANCE = 1e-4


def prepare(
    demo_csv: Path, target: str, task: str, columns: list[str]
) -> tuple[Any, Encoded, Encoded]:
    """(preprocessor, first 40 records, last 20 records) of the demo data, prepared once."""
    table = read_table(demo_csv)
    pipeline = Pipeline.plan(
        table, target, task, MultimodalClassifier(**FAST, features=columns)
    ).fit(table)
    encoded = pipeline.prepare(table)
    first = np.arange(len(encoded)) < 40
    return pipeline.preprocessor, take_records(encoded, first), take_records(encoded, ~first)


@pytest.fixture(scope="module")
def classification(demo_csv: Path) -> tuple[Any, Encoded, Encoded]:
    return prepare(demo_csv, "label", "classification", COLUMNS)


@pytest.fixture(scope="module")
def regression(demo_csv: Path) -> tuple[Any, Encoded, Encoded]:
    return prepare(demo_csv, "score", "regression", ["image", "review", "income"])


def check_export(est: Any, valid: Encoded, out: Path) -> None:
    report = export_onnx(est, out, records=8, tolerance=TOLERANCE)
    assert report.parity.passed and report.parity.records == 8 and report.parity.rows == 16
    assert report.parity.source == "random records"
    assert report.onnx_path.is_file() and report.json_path.is_file()
    onnx_model = OnnxModel(out)
    fitted = est.fitted_model
    for mask in (valid.mask, masked_copies(valid.mask, seed=3)):
        expected = fitted.outputs(Encoded(valid.inputs, mask, valid.rows))
        got = onnx_model.predict(valid.inputs, mask)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", list_fusions())
def test_every_fusion_exports_with_parity(
    name: str, classification: tuple[Any, Encoded, Encoded], tmp_path: Path
) -> None:
    pre, train, valid = classification
    est = MultimodalClassifier(**FAST, features=COLUMNS, fusion=name).fit_encoded(pre, train, valid)
    assert est.model_config_.fusion == name
    check_export(est, valid, tmp_path / f"{name}.onnx")


@pytest.mark.parametrize("name", list_fusions("late"))
def test_every_decision_level_fusion_exports_as_a_regressor(
    name: str, regression: tuple[Any, Encoded, Encoded], tmp_path: Path
) -> None:
    pre, train, valid = regression
    est = MultimodalRegressor(**FAST, features=["image", "review", "income"], fusion=name)
    est.fit_encoded(pre, train, valid)
    assert fusion_level(name) == "late" and est.model_config_.task == "regression"
    check_export(est, valid, tmp_path / f"{name}.onnx")


@pytest.mark.parametrize(
    "encoders",
    [
        "text=transformer,audio=gru,image=raw",
        "text=raw,audio=raw,video=raw,tabular=raw,embedding=raw",
    ],
)
def test_the_other_from_scratch_encoders_export(
    encoders: str, demo_csv: Path, tmp_path: Path
) -> None:
    """The encoders the default fits above do not use, an embedding column included."""
    frame = read_table(demo_csv).df
    frame["vector"] = [f"[{i % 3}, {i % 5 - 2}, 0.5]" for i in range(len(frame))]
    est = MultimodalClassifier(
        **FAST,
        features=[*COLUMNS, "vector"],
        encoders=encoders,
        kinds="vector=embedding",
        base_dir=str(demo_csv.parent),
    )
    est.fit(frame, target="label")
    chosen = dict(pair.split("=") for pair in encoders.split(","))
    used = est.model_config_.encoders
    assert all(used[m] == chosen[k] for m, k in est.preprocessor_.modalities.items() if k in chosen)
    valid = est.prepare(frame.iloc[40:], with_target=False)
    check_export(est, valid, tmp_path / "m.onnx")
