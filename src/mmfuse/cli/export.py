"""``mmfuse export``: a fitted classifier or regressor as one ONNX graph, checked against PyTorch
with ONNX Runtime before it is written (``mmfuse.export``)."""

from __future__ import annotations

import argparse
import dataclasses

from mmfuse.cli.flags import add_params, given
from mmfuse.export.options import ExportOptions
from mmfuse.params import EstimatorParams, names

FORMATS = ("onnx",)
RUN_OPTIONS = ("num_threads", "base_dir", "cache_dir", "use_cache", "verbose")
"""Run parameters of the model that apply to an export (threads; how --data is read)."""


def export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", help="model directory written by `mmfuse fit` (a classifier or regressor)"
    )
    p.add_argument("--format", default="onnx", choices=FORMATS, help="file format (default: onnx)")
    p.add_argument(
        "--out",
        required=True,
        help="file to write, e.g. model.onnx; its preprocessing "
        "goes next to it (model.preprocess.json)",
    )
    p.add_argument(
        "--data",
        help="records to check the graph on, e.g. the validation file "
        "(default: random records made from the model's schema)",
    )
    options = (*names(ExportOptions), *RUN_OPTIONS)
    add_params(p, {"": ExportOptions, "model": EstimatorParams}, only=options)


def export(a: argparse.Namespace) -> int:
    from mmfuse.cli.modeling import open_model
    from mmfuse.estimators.output_dir import check_output_file
    from mmfuse.export.onnx_export import export_onnx
    from mmfuse.export.options import export_options
    from mmfuse.export.runtime import preprocess_json_path, require_packages

    require_packages()
    options = export_options(**given(a, ExportOptions))  # refused before the model is loaded
    check_output_file(a.out, data=a.data, model=a.model)
    check_output_file(
        preprocess_json_path(a.out), "the preprocessing JSON", data=a.data, model=a.model
    )
    est = open_model(a.model, a, device="cpu")
    report = export_onnx(est, a.out, a.data, **dataclasses.asdict(options))
    print(report.summary(), flush=True)
    return 0
