"""An exported model in ONNX Runtime: records in, the model's outputs out.

``OnnxModel(path)`` opens the graph and the preprocessing JSON written next to it
(``model.onnx`` -> ``model.preprocess.json``). ``prepare`` turns a table into the graph's inputs
with the preprocessing that JSON records (mmfuse's own code, rebuilt from it); ``predict`` runs
prepared inputs, keyed by modality as ``Encoded`` holds them::

    onnx_model = OnnxModel("model.onnx")
    records = onnx_model.prepare("valid.csv")
    probabilities = onnx_model.predict(records.inputs, records.mask)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmfuse._io import read_json
from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.errors import MmfuseError
from mmfuse.export.graph_inputs import GraphInput, onnx_feed

EXPORT_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
"""What ``pip install 'mmfuse[export]'`` installs."""


def require_packages(modules: Sequence[str] = EXPORT_PACKAGES, what: str = "ONNX export") -> None:
    """MmfuseError naming the missing modules and the extra that installs them."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MmfuseError(
            f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed: pip install 'mmfuse[export]'"
        )


def preprocess_json_path(onnx_path: str | Path) -> Path:
    """Where a graph's preprocessing JSON lives: ``model.onnx`` -> ``model.preprocess.json``."""
    path = Path(onnx_path)
    stem = path.name[: -len(".onnx")] if path.name.lower().endswith(".onnx") else path.name
    return path.with_name(f"{stem}.preprocess.json")


class OnnxModel:
    """An exported classifier or regressor in ONNX Runtime.

    Args:
        path: The ``.onnx`` file written by ``mmfuse export``.
        num_threads: Threads ONNX Runtime uses (None: its default, all cores).
        providers: ONNX Runtime execution providers (default: the CPU).
        manifest: The preprocessing JSON's content (default: read from next to ``path``).
    """

    def __init__(
        self,
        path: str | Path,
        num_threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        require_packages(("onnxruntime",), "running an exported model")
        import onnxruntime

        self.path = Path(path)
        self.manifest = dict(manifest) if manifest is not None else _read_manifest(self.path)
        self.inputs = [_graph_input(entry) for entry in self.manifest["inputs"]]
        self.output_name: str = self.manifest["outputs"][0]["name"]
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        if num_threads:
            options.intra_op_num_threads, options.inter_op_num_threads = num_threads, 1
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=list(providers)
        )

    @property
    def networks(self) -> dict[str, str]:
        """Modality -> the frozen pretrained network that runs inside the graph on its prepared
        input (what ``parity.reference_outputs`` needs to run the same records in PyTorch)."""
        return dict(self.manifest["frozen_networks_in_graph"])

    @property
    def modalities(self) -> list[str]:
        """The graph's modalities, in the order of its inputs and of its mask's columns."""
        return [i.modality for i in self.inputs]

    def predict(
        self,
        inputs: Mapping[str, np.ndarray],
        mask: Mapping[str, np.ndarray] | np.ndarray,
        batch_size: int = 32,
    ) -> np.ndarray:
        """(N, C) class probabilities, or (N,) standardised regression values.

        Args:
            inputs: Modality -> (N, ...) prepared input (``Encoded.inputs``).
            mask: Modality -> (N,) bool presence (``Encoded.mask``), or the (N, M) matrix.
            batch_size: Records per run.
        """
        if not isinstance(mask, Mapping):
            mask = {m: np.asarray(mask)[:, j] for j, m in enumerate(self.modalities)}
        n = len(next(iter(mask.values()))) if mask else 0
        feed = onnx_feed(self.inputs, Encoded(dict(inputs), dict(mask), np.arange(n)))
        step, out = max(batch_size, 1), None
        for start in range(0, n, step):  # into one array, not a list joined at the end (data.row_buffer)
            batch = {name: x[start : start + step] for name, x in feed.items()}
            part = self.session.run([self.output_name], batch)[0]
            if out is None:
                out = np.empty((n, *part.shape[1:]), dtype=part.dtype)
            out[start : start + len(part)] = part
        if out is not None:
            return out
        width = self.manifest["outputs"][0]["shape"][1:]
        return np.zeros((0, *width), dtype=np.float32)

    def prepare(
        self, data: Any, base_dir: str | Path | None = None, verbose: bool = False
    ) -> Encoded:
        """The records of ``data`` (a file, folder or DataFrame) as the graph's inputs; a frozen
        network outside the graph computes its features here, through the feature cache."""
        from mmfuse.data.readers import read_table
        from mmfuse.estimators.pretrained import feature_source

        pre = Preprocessor.from_dict(self.manifest["preprocessor"])
        features = feature_source(pre.pretrained, pre.modalities, "cpu", True, cache_dir=None)
        table = read_table(data, base_dir)
        return pre.with_features(features).transform(table, with_target=False, verbose=verbose)


def _graph_input(entry: Mapping[str, Any]) -> GraphInput:
    """A ``GraphInput`` from its JSON form (whose shape starts with the batch axis)."""
    shape = tuple(entry["shape"][1:])
    return GraphInput(entry["name"], entry["modality"], entry["kind"], shape, entry["dtype"],
                      entry["form"], entry["backbone"])  # fmt: skip


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MmfuseError(f"{path}: no such ONNX file")
    manifest_path = preprocess_json_path(path)
    if not manifest_path.is_file():
        raise MmfuseError(
            f"{manifest_path} is missing: `mmfuse export` writes it next to {path.name}, "
            "and the graph cannot be fed without it"
        )
    manifest: dict[str, Any] = read_json(manifest_path)
    return manifest
