"""``export_onnx``: a fitted classifier or regressor as one ONNX graph, checked against PyTorch.

The steps, in order:

1. Load the model (a directory, or take a fitted estimator) and check both output paths.
2. Choose the frozen pretrained networks that go inside the graph (all of them by default).
3. Write the graph to a temporary file next to the output. When that fails, or ONNX Runtime
   cannot run the result, each part (every encoder with its network, the fusion with the head)
   is exported on its own: a frozen network that cannot be written stays outside the graph,
   its features becoming the input (said in the report and the JSON); any other failing part
   stops the export, naming the part and the reason. An ensemble (kept by ``--preset``) is one
   graph too: the frozen networks once, then every member on their features, the outputs
   averaged; a network that fails is traced and left outside the same way.
4. Run the parity check (``parity.check_parity``) on the first records of ``data``, or on
   random records, each also with modalities masked out.
5. Only when it passes: write the preprocessing JSON and move the graph into place. Nothing is
   left behind on failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from mmfuse._io import atomic_path, write_json
from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.data.readers import Table
from mmfuse.errors import MmfuseError
from mmfuse.export.graph_inputs import (
    BATCH,
    MASK_NAME,
    GraphInput,
    frozen_modalities,
    graph_inputs,
    graph_preprocessor,
    presence_matrix,
)
from mmfuse.export.graph_module import GraphModule, graph_parts, part_names
from mmfuse.export.manifest import GraphOrigin, build_manifest
from mmfuse.export.onnx_graph import example_tensors, failing_parts, first_failure
from mmfuse.export.options import ExportOptions, export_options
from mmfuse.export.parity import ParityResult, check_parity
from mmfuse.export.random_records import random_records
from mmfuse.export.runtime import OnnxModel, preprocess_json_path, require_packages
from mmfuse.models.fitted import FittedModel

EXAMPLE_RECORDS = 3
"""Records in the example an exporter traces (a size no parity batch has)."""


@dataclass(frozen=True)
class ExportReport:
    """What ``export_onnx`` wrote and how it was checked.

    Attributes:
        onnx_path: The graph.
        json_path: Its preprocessing JSON.
        exporter: The torch.onnx exporter used.
        opset: The ONNX opset.
        inputs: The graph's inputs, without the mask (named ``MASK_NAME``, last).
        outputs: The graph's output names.
        parts: The parts inside the graph.
        outside: Frozen modality -> why its network is outside the graph (its features are the
            input).
        parity: The parity check.
        size_bytes: The graph's file size.
    """

    onnx_path: Path
    json_path: Path
    exporter: str
    opset: int
    inputs: list[GraphInput]
    outputs: list[str]
    parts: list[str]
    outside: dict[str, str]
    parity: ParityResult
    size_bytes: int

    def summary(self) -> str:
        """The report, a few lines for a person."""

        def shape(i: GraphInput) -> str:
            return f"({', '.join([BATCH, *map(str, i.shape)])}) {i.dtype}"

        def what(i: GraphInput) -> str:
            if i.form == "prepared":
                return f"{i.kind}, prepared for {i.backbone} (network in the graph)"
            if i.form == "features":
                return f"{i.kind}, {i.backbone} features (network outside the graph)"
            return i.kind

        width = max(len(n) for n in [*(i.name for i in self.inputs), MASK_NAME])
        size = f"{self.size_bytes / 1e6:.1f} MB; {self.exporter} exporter, opset {self.opset}"
        lines = [f"wrote {self.onnx_path} ({size}) and {self.json_path}", "inputs:"]
        lines += [f"  {i.name:<{width}}  {shape(i)}: {what(i)}" for i in self.inputs]
        columns = ", ".join(i.modality for i in self.inputs)
        mask = f"({BATCH}, {len(self.inputs)}) bool: True where present; columns {columns}"
        lines.append(f"  {MASK_NAME:<{width}}  {mask}")
        lines.append(f"outputs: {', '.join(self.outputs)}")
        lines.append(f"in the graph: {'; '.join(self.parts)}")
        lines += [f"outside the graph: {m}: {why}" for m, why in self.outside.items()]
        lines.append(f"parity: {self.parity.summary()}")
        return "\n".join(lines)


def export_onnx(source: Any, out: str | Path, data: Any = None, **options: Any) -> ExportReport:
    """Writes a fitted classifier or regressor as one ONNX graph plus its preprocessing JSON
    (``model.onnx`` -> ``model.preprocess.json``), after checking it against PyTorch.

    Args:
        source: A model directory, or a fitted MultimodalClassifier / MultimodalRegressor.
        out: The ``.onnx`` file to write.
        data: Records (file, folder or DataFrame) for the parity check; None: random records.
        **options: Fields of ``ExportOptions``: ``opset``, ``tolerance``, ``records``,
            ``exporter``, ``include_networks``.

    Raises:
        MmfuseError: A retrieval model, a missing package, an output path that is not
            writable, a part that cannot be exported, or a parity check that fails (the
            message gives the measured difference). No file is written then.
    """
    from mmfuse.training.device import set_threads

    require_packages()
    opts = export_options(**options)
    est = _estimator(source)
    model_dir = getattr(est, "model_dir_", None)
    out = _checked_outputs(Path(out), data, model_dir)
    set_threads(est.num_threads)
    fitted: FittedModel = est.fitted_model
    frozen = {
        m: fitted.preprocessor.pretrained[m].backbone
        for m in frozen_modalities(fitted.preprocessor)
    }
    networks = dict(frozen) if opts.include_networks else {}
    outside = {m: "left out on request" for m in frozen if m not in networks}
    with atomic_path(out) as scratch:
        networks, outside, parts = _write_graph(fitted, networks, outside, scratch, opts)
        fingerprint = getattr(est, "fingerprint_", "")
        origin = GraphOrigin(model_dir or "", fingerprint, fitted.config, opts.exporter, opts.opset,
                             out.name)  # fmt: skip
        graph_pre = graph_preprocessor(fitted.preprocessor, networks)
        inputs = graph_inputs(fitted.preprocessor, networks)
        manifest = build_manifest(origin, inputs, graph_pre, networks, outside)
        records, source_text = _parity_records(est, graph_pre, data, opts.records)
        onnx_model = OnnxModel(scratch, est.num_threads, manifest=manifest)
        parity = check_parity(onnx_model, fitted, records, networks, opts.tolerance, source_text)
        if not parity.passed:
            raise MmfuseError(
                "ONNX Runtime does not compute what PyTorch computes: "
                f"{parity.summary()}; no file was written"
            )
        manifest["parity"] = parity.to_dict()
        _stamp(scratch, manifest, preprocess_json_path(out).name)
        write_json(preprocess_json_path(out), manifest)
    return ExportReport(
        onnx_path=out, json_path=preprocess_json_path(out), exporter=opts.exporter,
        opset=opts.opset, inputs=inputs, outputs=[o["name"] for o in manifest["outputs"]],
        parts=parts, outside=outside, parity=parity, size_bytes=os.path.getsize(out),
    )  # fmt: skip


def _estimator(source: Any) -> Any:
    """The estimator of a model directory (loaded on the CPU) or the one given."""
    if isinstance(source, (str, Path)):
        from mmfuse.estimators.io import load

        source = load(source, device="cpu", verbose=False)
    if getattr(source, "task_", None) == "retrieval":
        where = getattr(source, "model_dir_", None)
        raise MmfuseError(
            f"{where or 'this'} holds a retrieval model (a dual encoder that ranks items); ONNX "
            "export writes classifiers and regressors. Serve it with `mmfuse index` and "
            "`mmfuse search`"
        )
    if not hasattr(source, "fitted_model"):
        raise MmfuseError(
            f"expected a model directory or a fitted estimator, got {type(source).__name__}"
        )
    return source


def _checked_outputs(out: Path, data: Any, model_dir: str | None) -> Path:
    from mmfuse.estimators.output_dir import check_output_file

    source = data if isinstance(data, (str, Path)) else None
    check_output_file(out, data=source, model=model_dir)
    check_output_file(
        preprocess_json_path(out), "the preprocessing JSON", data=source, model=model_dir
    )
    return out


def _graph(
    fitted: FittedModel, networks: Mapping[str, str]
) -> tuple[GraphModule, tuple[Tensor, ...], list[str]]:
    """The graph module, an example batch and the input names, for ``networks`` inside it."""
    pre = fitted.preprocessor
    graph = GraphModule(fitted.model, fitted.task, fitted.config.num_outputs, networks).eval()
    inputs = graph_inputs(pre, networks)
    example = random_records(graph_preprocessor(pre, networks), EXAMPLE_RECORDS)
    order = [i.modality for i in inputs]
    tensors = example_tensors(example.inputs, presence_matrix(example.mask, order), order)
    return graph, tensors, [*(i.name for i in inputs), MASK_NAME]


def _write_graph(
    fitted: FittedModel,
    networks: dict[str, str],
    outside: dict[str, str],
    path: Path,
    opts: ExportOptions,
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Writes the graph to ``path``; returns the networks inside it, the frozen modalities
    whose network stayed outside (and why) and the names of the parts in the graph. A network
    that cannot be exported is left outside and the graph written again without it."""
    graph, example, names = _graph(fitted, networks)
    why = first_failure(graph, example, names, graph.output_names, path, opts.opset, opts.exporter)
    if why is None:
        return networks, outside, part_names(graph, fitted.config)
    parts = graph_parts(graph, example, fitted.config)
    failures = failing_parts(parts, opts.opset, opts.exporter)
    blocking = {p.name: failures[p.name] for p in parts if p.name in failures and not p.network}
    if blocking or not failures:
        whole = {"the whole graph (each part exports on its own)": why}
        raise MmfuseError(_refusal(blocking or whole, opts))
    dropped = {p.modality: failures[p.name] for p in parts if p.name in failures}
    dims = {m: fitted.preprocessor.pretrained[m].dim for m in dropped}
    outside = {**outside, **{
        m: f"the {networks[m]} network could not be exported ({reason}); the graph takes its "
           f"{dims[m]}-d features"
        for m, reason in dropped.items()
    }}  # fmt: skip
    kept = {m: n for m, n in networks.items() if m not in dropped}
    return _write_graph(fitted, kept, outside, path, opts)


def _refusal(failures: Mapping[str, str], opts: ExportOptions) -> str:
    other = "dynamo" if opts.exporter == "torchscript" else "torchscript"
    listed = "\n".join(f"  {part}: {why}" for part, why in failures.items())
    return (
        f"cannot export this model with the {opts.exporter} exporter (opset {opts.opset}); these "
        f"parts cannot be exported:\n{listed}\nNo file was written. Try the {other} exporter "
        f"(--exporter {other}) or another opset (--opset)."
    )


def _parity_records(est: Any, pre: Preprocessor, data: Any, count: int) -> tuple[Encoded, str]:
    """The records the parity check runs: the first ``count`` of ``data``, prepared for the
    graph, or ``count`` random records."""
    if data is None:
        return random_records(pre, count, seed=1), "random records"
    from mmfuse.estimators.pipeline import Pipeline

    table = est.read(data)
    first = Table(table.df.iloc[:count], table.base_dir, table.name)
    records = Pipeline.around(pre, est).prepare(first, with_target=False, on_bad_record="skip")
    if len(records) == 0:
        raise MmfuseError(f"{table.name}: no readable record to check the graph on")
    return records, f"the first {len(records)} records of {table.name}"


def _stamp(path: Path, manifest: Mapping[str, Any], json_name: str) -> None:
    """Records in the graph's metadata who wrote it, for which model, and where its
    preprocessing JSON is."""
    import onnx

    from mmfuse import __version__

    graph = onnx.load(str(path))
    model = manifest["model"]
    stamps = {
        "mmfuse.version": __version__, "mmfuse.preprocess_json": json_name,
        "mmfuse.task": model["task"], "mmfuse.model_fingerprint": model["fingerprint"],
    }  # fmt: skip
    for key, value in stamps.items():
        graph.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))
