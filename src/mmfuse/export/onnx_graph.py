"""Writing a module as an ONNX file, and tracing an export failure to the parts of the model.

``write_onnx`` runs one of torch.onnx's exporters with a dynamic batch axis on every input and
output. The "torchscript" exporter traces the module (with ``symbolics.extra_symbolics`` for the
operations it lacks); "dynamo" goes through ``torch.export``. ``first_failure`` says why a module
cannot be written, or cannot then be loaded and run by ONNX Runtime; ``failing_parts`` asks the
same of each part (``graph_module.graph_parts``), so a refusal can name the encoder or the
fusion that stops the export.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmfuse.errors import MmfuseError
from mmfuse.export.graph_inputs import BATCH
from mmfuse.export.graph_module import GraphPart
from mmfuse.export.symbolics import extra_symbolics


def max_opset(exporter: str) -> int:
    """The newest ONNX opset the exporter writes."""
    from torch.onnx import _constants

    if exporter == "torchscript":
        return int(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    return int(_constants.ONNX_MAX_OPSET)


def write_onnx(
    module: nn.Module,
    example: tuple[Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    path: Path,
    opset: int,
    exporter: str,
) -> None:
    """Writes ``module`` (eval mode) to ``path``, one self-contained file.

    Raises:
        MmfuseError: ``opset`` is newer than the exporter writes.
        Exception: Whatever the exporter raises for a module it cannot write.
    """
    if opset > max_opset(exporter):
        raise MmfuseError(
            f"the {exporter} exporter writes ONNX opsets up to {max_opset(exporter)}, not {opset}"
        )
    module.eval()
    names = [*input_names, *output_names]
    # autograd on: without it, nn.TransformerEncoderLayer in eval mode takes a fused fast path
    # (aten::_transformer_encoder_layer_fwd) that ONNX has no translation for
    quiet = contextlib.redirect_stdout(io.StringIO())
    with torch.enable_grad(), warnings.catch_warnings(), quiet:
        warnings.simplefilter("ignore")  # tracer and deprecation notes; failures raise
        if exporter == "torchscript":
            with extra_symbolics(opset), _native_stderr_silenced():
                torch.onnx.export(
                    module, example, str(path), input_names=list(input_names),
                    output_names=list(output_names), opset_version=opset, dynamo=False,
                    dynamic_axes={n: {0: BATCH} for n in names},
                )  # fmt: skip
            return
        batch = torch.export.Dim(BATCH, min=1)
        shapes = tuple({0: batch} for _ in example)
        takes_varargs = any(
            p.kind is p.VAR_POSITIONAL
            for p in inspect.signature(module.forward).parameters.values()
        )
        with _logger_level("torch.onnx", logging.ERROR):  # notes on optional packages it skips
            program = torch.onnx.export(
                module, example, input_names=list(input_names), output_names=list(output_names),
                opset_version=opset, dynamo=True, verbose=False,
                dynamic_shapes=(shapes,) if takes_varargs else shapes,
            )  # fmt: skip
        assert program is not None
        program.save(str(path), external_data=False)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The TorchScript exporter's C++ code writes shape-inference notes straight to file
    descriptor 2 (nothing a user can act on; the parity check tests the graph): muted here."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w", encoding="utf-8") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)


def runs_in_onnxruntime(
    path: Path, example: tuple[Tensor, ...], input_names: Sequence[str]
) -> None:
    """Loads the file in ONNX Runtime and runs it once on ``example`` (raises when it cannot)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {n: t.numpy() for n, t in zip(input_names, example)})


def first_failure(
    module: nn.Module,
    example: tuple[Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    path: Path,
    opset: int,
    exporter: str,
) -> str | None:
    """None when ``module`` was written to ``path`` and runs in ONNX Runtime; else why not, in
    one line."""
    try:
        write_onnx(module, example, input_names, output_names, path, opset, exporter)
        runs_in_onnxruntime(path, example, input_names)
    except MmfuseError:
        raise
    except Exception as err:  # noqa: BLE001 - any exporter or runtime failure is the answer
        return reason(err)
    return None


def failing_parts(parts: Sequence[GraphPart], opset: int, exporter: str) -> dict[str, str]:
    """Part name -> why it cannot be exported, for each part that cannot."""
    failures = {}
    with tempfile.TemporaryDirectory(prefix="mmfuse-export-") as scratch:
        for k, part in enumerate(parts):
            names = [f"input_{i}" for i in range(len(part.example))]
            outputs = _output_names(part.module, part.example)
            path = Path(scratch) / f"part{k}.onnx"
            why = first_failure(part.module, part.example, names, outputs, path, opset, exporter)
            if why is not None:
                failures[part.name] = why
    return failures


def _output_names(module: nn.Module, example: tuple[Tensor, ...]) -> list[str]:
    with torch.no_grad():
        out = module(*example)
    return [f"output_{i}" for i in range(len(out) if isinstance(out, tuple) else 1)]


def reason(err: BaseException) -> str:
    """The informative line of an exporter's or ONNX Runtime's error, with its type: the first
    line, or the one under the dynamo exporter's "Exception summary" heading."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the dynamo exporter colours its text
    lines = [line.strip() for line in plain.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    below = [lines[k + 1] for k in range(len(lines) - 1) if "Exception summary" in lines[k]]
    text = f"{type(err).__name__}: {(below or lines)[0]}"
    return text if len(text) <= 300 else text[:297] + "..."


def example_tensors(
    inputs: dict[str, np.ndarray], present: np.ndarray, order: Sequence[str]
) -> tuple[Tensor, ...]:
    """The graph's example arguments: one tensor per modality in ``order``, then the mask."""
    return (
        *(torch.from_numpy(np.ascontiguousarray(inputs[m])) for m in order),
        torch.from_numpy(present),
    )
