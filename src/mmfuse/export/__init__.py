"""A fitted classifier or regressor as one ONNX graph, checked against PyTorch, and run again.

``export_onnx(model_dir_or_estimator, "model.onnx", data=...)`` writes the graph (encoders,
frozen pretrained networks, fusion and head; a dynamic batch axis; the presence mask as an
input) and ``model.preprocess.json`` next to it, after ONNX Runtime matched PyTorch on the
records of ``data`` (or on random records). ``OnnxModel("model.onnx")`` prepares records the
same way and runs the graph::

    from mmfuse.export import OnnxModel, export_onnx

    report = export_onnx("model", "model.onnx", data="valid.csv")
    print(report.summary())
    onnx_model = OnnxModel("model.onnx")
    records = onnx_model.prepare("valid.csv")
    probabilities = onnx_model.predict(records.inputs, records.mask)

The graph's parts live in ``graph_module`` (the model as flat tensors), ``graph_inputs`` (what
it takes), ``onnx_graph`` (the exporters), ``parity`` (the check), ``manifest`` (the JSON) and
``runtime`` (ONNX Runtime). onnx, onnxruntime and onnxscript come with
``pip install 'mmfuse[export]'``.

Importing this package is cheap: torch and ONNX load with the first name used from it.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ExportOptions": "mmfuse.export.options",
    "ExportReport": "mmfuse.export.onnx_export",
    "OnnxModel": "mmfuse.export.runtime",
    "ParityResult": "mmfuse.export.parity",
    "export_onnx": "mmfuse.export.onnx_export",
    "reference_outputs": "mmfuse.export.parity",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmfuse.export' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
