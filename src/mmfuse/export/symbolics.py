"""ONNX translations the TorchScript exporter lacks for operations mmfuse's modules use.

- ``aten::logaddexp`` (the "vote" fusion's tie-break): ``max(a, b) + log(1 + exp(-|a - b|))``,
  and ``a + log 2`` where ``a == b`` (so two ``-inf`` stay ``-inf``, as in PyTorch).
- ``aten::__iand_`` (an in-place ``&=`` on a bool mask, in the text transformer encoder): ONNX
  ``And``; the exporter writes the result back into the sliced tensor itself.
- ``aten::eye``: the exporter writes ``EyeLike`` with the requested type, which ONNX Runtime does
  not implement for bool (the "graph" fusion's neighbour mask); here ``EyeLike`` runs on floats
  and the result is cast.

They are registered only while an export runs (``extra_symbolics``), so nothing changes for
other users of ``torch.onnx`` in the process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

Graph = Any
"""The exporter's graph context (``torch.onnx``'s ``GraphContext``)."""


def _logaddexp(g: Graph, a: Any, b: Any) -> Any:
    one = g.op("Constant", value_t=torch.tensor(1.0))
    gap = g.op("Abs", g.op("Sub", a, b))
    general = g.op(
        "Add", g.op("Max", a, b), g.op("Log", g.op("Add", one, g.op("Exp", g.op("Neg", gap))))
    )
    equal = g.op("Add", a, g.op("Constant", value_t=torch.tensor(math.log(2.0))))
    return g.op("Where", g.op("Equal", a, b), equal, general)


def _iand(g: Graph, a: Any, b: Any) -> Any:
    return g.op("And", a, b)


def _eye(g: Graph, *args: Any) -> Any:
    from torch.onnx import symbolic_helper

    *sizes, dtype, _layout, _device, _pin_memory = args  # eye(n, ...) or eye(n, m, ...)
    one = g.op("Constant", value_t=torch.tensor([1]))
    dims = [g.op("Reshape", n, one) for n in (sizes * 2 if len(sizes) == 1 else sizes)]
    zeros = g.op("ConstantOfShape", g.op("Concat", *dims, axis_i=0), value_t=torch.tensor([0.0]))
    identity = g.op("EyeLike", zeros)
    code = symbolic_helper._maybe_get_const(dtype, "i")
    if not isinstance(code, int):  # no dtype given: float, like torch.eye
        return identity
    return g.op("Cast", identity, to_i=symbolic_helper.scalar_type_to_onnx[code])


SYMBOLICS: dict[str, Callable[..., Any]] = {
    "aten::logaddexp": _logaddexp,
    "aten::__iand_": _iand,
    "aten::eye": _eye,
}


@contextmanager
def extra_symbolics(opset: int) -> Iterator[None]:
    """Within the block, the TorchScript exporter uses ``SYMBOLICS`` for opset ``opset``."""
    for name, function in SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(name, function, opset)
    try:
        yield
    finally:
        for name in SYMBOLICS:
            torch.onnx.unregister_custom_op_symbolic(name, opset)
