"""Export of a model with frozen pretrained encoders (EfficientNet-Lite0 for images, MiniLM for
text): the networks go inside the graph, which then takes their prepared inputs; a network the
exporter cannot write stays outside, its features becoming the input; and on request
(``include_networks=False``) every network stays outside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from mmfuse import MultimodalClassifier
from mmfuse.data.readers import read_table
from mmfuse.export import OnnxModel, export_onnx
from mmfuse.export.graph_module import FrozenNetwork
from mmfuse.pretrained import BACKBONES

pytest.importorskip("onnxruntime")
NETWORKS = ("efficientnet-lite0", "minilm")
pytestmark = pytest.mark.skipif(
    any(BACKBONES[n].missing() for n in NETWORKS), reason="the pretrained extra is not installed"
)
RECORDS = 6


def _fitted(demo_csv: Path, preset: str) -> MultimodalClassifier:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMFUSE_PRETRAINED", "1")
        clf = MultimodalClassifier(
            epochs=1,
            dim=8,
            verbose=False,
            num_threads=1,
            seed=0,
            features=["image", "review", "income"],
            preset=preset,
        )
        clf.fit(demo_csv, target="label")
    return clf


@pytest.fixture(scope="module")
def classifier(demo_csv: Path) -> MultimodalClassifier:
    clf = _fitted(demo_csv, "none")
    assert {m: (p.backbone, p.frozen) for m, p in clf.preprocessor_.pretrained.items()} == {
        "image": ("efficientnet-lite0", True),
        "review": ("minilm", True),
    }
    return clf


def shapes(report: Any) -> list[tuple[str, tuple[int, ...], str, str]]:
    return [(i.name, i.shape, i.dtype, i.form) for i in report.inputs]


def test_frozen_networks_are_inside_the_graph(
    classifier: MultimodalClassifier, demo_csv: Path, tmp_path: Path
) -> None:
    report = export_onnx(classifier, tmp_path / "m.onnx", data=demo_csv, records=RECORDS)
    assert shapes(report) == [
        ("image", (3, 224, 224), "float32", "prepared"),
        ("review", (2, 128), "int64", "prepared"),
        ("tabular", (1,), "float32", "input"),
    ]
    assert report.outside == {} and report.parity.passed
    assert report.parts[:2] == [
        "encoder 'image' (efficientnet-lite0 network + projection)",
        "encoder 'review' (minilm network + projection)",
    ]
    doc = json.loads(report.json_path.read_text())
    image, review, _ = (i["preprocessing"] for i in doc["inputs"])
    assert (image["network"], image["network_in_graph"], image["size"], image["resize"]) == (
        "efficientnet-lite0",
        True,
        224,
        256,
    )
    assert (review["network"], review["max_length"], len(review["rows"])) == ("minilm", 128, 2)
    assert {m: p["frozen"] for m, p in doc["preprocessor"]["pretrained"].items()} == {
        "image": False,
        "review": False,
    }
    # the graph's own preprocessing, rebuilt from the JSON, gives the estimator's predictions
    table = read_table(demo_csv)
    rows = table.df.iloc[10 : 10 + RECORDS]
    onnx_model = OnnxModel(report.onnx_path)
    records = onnx_model.prepare(rows, base_dir=table.base_dir)
    got = onnx_model.predict(records.inputs, records.mask)
    expected = classifier.set_params(base_dir=str(table.base_dir)).predict_proba(rows)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def unexportable_minilm(monkeypatch: pytest.MonkeyPatch) -> str:
    """MiniLM made unexportable (an operator ONNX lacks); the reason export should give."""
    forward = FrozenNetwork.forward

    def patched(self: FrozenNetwork, x: Tensor) -> Tensor:
        out = forward(self, x)
        return out + 0 * torch.special.i1e(out) if self.backbone == "minilm" else out

    monkeypatch.setattr(FrozenNetwork, "forward", patched)
    return (
        "the minilm network could not be exported (UnsupportedOperatorError: Exporting the "
        "operator 'aten::special_i1e' to ONNX opset version 18 is not supported); the graph "
        "takes its 384-d features"
    )


def test_a_network_that_cannot_be_exported_stays_outside(
    classifier: MultimodalClassifier,
    demo_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reason = unexportable_minilm(monkeypatch)
    report = export_onnx(classifier, tmp_path / "m.onnx", data=demo_csv, records=RECORDS)
    assert report.outside == {"review": reason}
    assert shapes(report)[:2] == [
        ("image", (3, 224, 224), "float32", "prepared"),
        ("review", (384,), "float32", "features"),
    ]
    assert report.parity.passed
    assert f"outside the graph: review: {reason}" in report.summary()
    doc = json.loads(report.json_path.read_text())
    assert doc["outside_the_graph"] == [
        {"modality": "review", "network": "minilm", "reason": reason}
    ]
    review = doc["inputs"][1]["preprocessing"]
    assert review["network_in_graph"] is False and review["width"] == 384
    assert review["computed_by"].startswith("the frozen minilm network")


def test_networks_left_out_on_request(classifier: MultimodalClassifier, tmp_path: Path) -> None:
    report = export_onnx(classifier, tmp_path / "m.onnx", records=4, include_networks=False)
    assert shapes(report) == [
        ("image", (1440,), "float32", "features"),
        ("review", (384,), "float32", "features"),
        ("tabular", (1,), "float32", "input"),
    ]
    assert report.outside == {m: "left out on request" for m in ("image", "review")}
    assert report.parity.passed and report.size_bytes < 1_000_000


def test_a_network_that_cannot_be_exported_stays_outside_an_ensemble_too(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensemble = _fitted(demo_csv, "fast")  # the default fit's kind of model
    assert ensemble.model_config_.level == "ensemble"
    reason = unexportable_minilm(monkeypatch)
    report = export_onnx(ensemble, tmp_path / "m.onnx", data=demo_csv, records=RECORDS)
    assert report.outside == {"review": reason}
    assert [(i.name, i.form) for i in report.inputs][:2] == [("image", "prepared"), ("review", "features")]
    assert report.parity.passed
