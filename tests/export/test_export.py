"""``mmfuse export`` and ``mmfuse.export`` end to end on small models fitted on the 60-record demo
data (tests/conftest.py): the files written, the JSON, running the graph again, and every
refusal (retrieval models, a missing extra, a part that cannot be exported, a failed parity
check, bad options and output paths), none of which leaves a file behind."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mmfuse import MultimodalClassifier, MultimodalRegressor, MultimodalRetriever
from mmfuse.cli.main import main
from mmfuse.errors import MmfuseError
from mmfuse.estimators.io import load
from mmfuse.export import OnnxModel, export_onnx
from mmfuse.export.graph_inputs import graph_preprocessor
from mmfuse.export.runtime import preprocess_json_path

pytest.importorskip("onnxruntime")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "export.md"

FAST: dict[str, Any] = {
    "epochs": 1,
    "dim": 8,
    "verbose": False,
    "num_threads": 1,
    "seed": 0,
    "features": ["image", "review", "income", "region"],
}


@pytest.fixture(scope="module")
def model_dir(demo_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier (image CNN, text GRU, tabular MLP, attention fusion) saved once."""
    out = tmp_path_factory.mktemp("export") / "model"
    MultimodalClassifier(**FAST).fit(demo_csv, target="label", out_dir=out)
    return out


@pytest.fixture(scope="module")
def exported(
    model_dir: Path, demo_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The model exported by the CLI with --data; (the .onnx path, what the CLI printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                "export",
                str(model_dir),
                "--format",
                "onnx",
                "--out",
                str(out),
                "--data",
                str(demo_csv),
                "--records",
                "16",
                "--threads",
                "1",
            ]
        )
    assert code == 0
    return out, printed.getvalue()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cli_writes_the_graph_and_its_preprocessing(exported: tuple[Path, str]) -> None:
    out, printed = exported
    assert files_in(out.parent) == ["model.onnx", "model.preprocess.json"]
    assert (
        "inputs:" in printed
        and "  present  (batch, 3) bool: True where present; columns image, review, tabular"
        in printed
    )
    assert "outputs: probabilities, logits" in printed
    assert "fusion 'attention' and head" in printed
    assert "over 16 records + 16 with modalities masked out (the first 16 records of" in printed


def test_json_describes_inputs_mask_outputs_and_parity(
    exported: tuple[Path, str], model_dir: Path
) -> None:
    out, _ = exported
    doc = json.loads(preprocess_json_path(out).read_text())
    assert doc["format"] == "mmfuse-onnx-preprocess" and doc["onnx_file"] == "model.onnx"
    names = [(i["name"], i["kind"], i["shape"], i["dtype"], i["form"]) for i in doc["inputs"]]
    assert names == [
        ("image", "image", ["batch", 3, 32, 32], "float32", "input"),
        ("review", "text", ["batch", 64], "int64", "input"),
        ("tabular", "tabular", ["batch", 2], "float32", "input"),
    ]
    image, _, tabular = (i["preprocessing"] for i in doc["inputs"])
    assert image["size"] == 32 and image["mean"] == [0.485, 0.456, 0.406]
    assert [n["column"] for n in tabular["numeric"]] == ["income"]
    assert sorted(tabular["categorical"][0]["categories"]) == ["east", "north", "south", "west"]
    assert doc["mask"] == {
        **doc["mask"],
        "name": "present",
        "shape": ["batch", 3],
        "dtype": "bool",
        "columns": ["image", "review", "tabular"],
    }
    assert [o["name"] for o in doc["outputs"]] == ["probabilities", "logits"]
    assert doc["classes"] == ["negative", "positive"]
    assert doc["outside_the_graph"] == []
    parity = doc["parity"]
    assert parity["passed"] and parity["records"] == 16 and parity["rows"] == 32
    assert 0 <= parity["max_abs_diff"] <= 1e-4 and parity["tolerance"] == 1e-4
    saved = json.loads((model_dir / "preprocess.json").read_text())
    assert doc["preprocessor"] == saved  # no frozen networks: the model's own preprocessing
    assert (
        doc["model"]["fingerprint"]
        == json.loads((model_dir / "config.json").read_text())["fingerprint"]
    )


def test_graph_metadata_and_dynamic_batch(exported: tuple[Path, str]) -> None:
    import onnx

    out, _ = exported
    graph = onnx.load(str(out))
    props = {p.key: p.value for p in graph.metadata_props}
    assert (
        props["mmfuse.preprocess_json"] == "model.preprocess.json"
        and props["mmfuse.task"] == "classification"
    )
    dims = [
        [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in graph.graph.input
    ]
    assert [i.name for i in graph.graph.input] == ["image", "review", "tabular", "present"]
    assert all(d[0] == "batch" for d in dims)
    assert graph.opset_import[0].version == 18


def test_onnx_model_prepares_and_predicts_like_the_estimator(
    exported: tuple[Path, str], model_dir: Path, demo_csv: Path
) -> None:
    out, _ = exported
    onnx_model = OnnxModel(out)
    records = onnx_model.prepare(demo_csv)
    probabilities = onnx_model.predict(records.inputs, records.mask)
    expected = load(model_dir, verbose=False).predict_proba(demo_csv)
    assert probabilities.shape == (60, 2)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-4)
    one_at_a_time = onnx_model.predict(records.inputs, records.mask, batch_size=1)
    np.testing.assert_allclose(one_at_a_time, probabilities, rtol=0, atol=1e-6)
    matrix = np.stack([records.mask[m] for m in onnx_model.modalities], axis=1)
    np.testing.assert_array_equal(onnx_model.predict(records.inputs, matrix), probabilities)


def test_regressor_with_the_dynamo_exporter(demo_csv: Path, tmp_path: Path) -> None:
    reg = MultimodalRegressor(**{**FAST, "features": ["image", "income", "region"]}).fit(
        demo_csv, target="score"
    )
    report = export_onnx(reg, tmp_path / "reg.onnx", exporter="dynamo", records=8)
    assert report.exporter == "dynamo" and report.outputs == ["value"] and report.parity.passed
    doc = json.loads(report.json_path.read_text())
    target = reg.preprocessor_.fitted_target
    assert doc["target"] == {
        "column": "score",
        "mean": target.mean,
        "std": target.std,
        "decode": "value * std + mean",
    }
    onnx_model = OnnxModel(report.onnx_path)
    records = onnx_model.prepare(demo_csv)
    values = onnx_model.predict(records.inputs, records.mask)
    assert values.shape == (60,)
    np.testing.assert_allclose(
        values * target.std + target.mean, reg.predict(demo_csv), rtol=0, atol=1e-3
    )


def test_a_retrieval_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        MmfuseError, match="retrieval model .* ONNX export writes classifiers and regressors"
    ):
        export_onnx(MultimodalRetriever(), tmp_path / "m.onnx")
    assert files_in(tmp_path) == []


def test_missing_extra_names_the_install_command(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else real(name, *a),
    )
    assert main(["export", str(model_dir), "--out", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: ONNX export needs onnxscript, which is not installed: pip install 'mmfuse[export]'"
    )
    assert files_in(tmp_path) == []


def test_failed_parity_check_leaves_no_file(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predict = OnnxModel.predict
    monkeypatch.setattr(OnnxModel, "predict", lambda self, *a, **k: predict(self, *a, **k) + 2e-3)
    with pytest.raises(
        MmfuseError,
        match=r"max abs difference 2\.0e-03 on probabilities over 8 records .*"
        r"tolerance 1e-04\); no file was written",
    ):
        export_onnx(model_dir, tmp_path / "m.onnx", records=8)
    assert files_in(tmp_path) == []


class _UnexportableEncoder(nn.Module):
    """The same output as ``inner``, through an operation ONNX has no translation for."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x + 0 * torch.special.i1e(x))


def test_a_part_that_cannot_be_exported_is_named(model_dir: Path, tmp_path: Path) -> None:
    est = load(model_dir, verbose=False)
    est.model_.encoders["tabular"] = _UnexportableEncoder(est.model_.encoders["tabular"])
    with pytest.raises(MmfuseError) as err:
        export_onnx(est, tmp_path / "m.onnx", records=4)
    lines = str(err.value).splitlines()
    assert lines[0] == (
        "cannot export this model with the torchscript exporter (opset 18); these parts "
        "cannot be exported:"
    )
    assert lines[1] == (
        "  encoder 'tabular' (mlp): UnsupportedOperatorError: Exporting the operator "
        "'aten::special_i1e' to ONNX opset version 18 is not supported"
    )
    assert lines[2].startswith("No file was written. Try the dynamo exporter (--exporter dynamo)")
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--opset", "12"], "--opset 12: the ONNX opset must be 17 or later"),
        (["--opset", "25"], "the torchscript exporter writes ONNX opsets up to 20, not 25"),
        (["--records", "0"], "--records 0: the parity check needs at least 1 record"),
        (
            ["--tolerance", "-1"],
            "--tolerance -1.0: the tolerance must be a finite number, 0 or more",
        ),
    ],
)
def test_bad_options_exit_2(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert main(["export", str(model_dir), "--out", str(tmp_path / "m.onnx"), *args]) == 2
    assert message in capsys.readouterr().err
    assert files_in(tmp_path) == []


def test_outputs_never_replace_inputs(
    model_dir: Path, demo_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        ([str(tmp_path)], "is a folder"),
        ([str(model_dir / "model.onnx")], "lies inside the model directory"),
        ([str(demo_csv), "--data", str(demo_csv)], "is the input data file"),
    ]
    for out, message in cases:
        assert main(["export", str(model_dir), "--out", *out]) == 2
        assert message in capsys.readouterr().err
    assert "model.onnx" not in files_in(model_dir)


def test_graph_preprocessor_of_a_model_without_networks_is_its_own(model_dir: Path) -> None:
    pre = load(model_dir, verbose=False).preprocessor_
    assert graph_preprocessor(pre, {}).to_dict() == pre.to_dict()


def test_the_docs_python_snippets_run(
    model_dir: Path,
    demo_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/export.md's snippets, run in order as written, in a folder holding `model` and
    `valid.csv` (the demo records, their media linked)."""
    shutil.copytree(model_dir, tmp_path / "model")
    for entry in demo_csv.parent.iterdir():
        if entry.name != demo_csv.name:
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copy(demo_csv, tmp_path / "valid.csv")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) == 3
    namespace: dict[str, Any] = {}
    for code in blocks:
        exec(compile(code, str(DOCS), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("wrote model.onnx (") and "and model.preprocess.json" in printed[0]
    assert float(printed[-2]) <= 1e-4  # ONNX Runtime vs PyTorch eager on the valid.csv records
    assert printed[-1].startswith("{'negative': ")
