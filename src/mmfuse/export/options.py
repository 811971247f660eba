"""The options of an ONNX export, declared once: the Python keywords of ``export_onnx`` and the
flags of ``mmfuse export`` both come from these fields."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mmfuse._hints import option
from mmfuse.errors import MmfuseError
from mmfuse.params import param

EXPORTERS = ("torchscript", "dynamo")
"""torch.onnx's two exporters: "torchscript" traces the model (it handles the packed sequences
of the GRU text encoder, which ``torch.export`` cannot); "dynamo" goes through ``torch.export``."""

MIN_OPSET = 17
"""The first ONNX opset with LayerNormalization, which every transformer-style part uses."""


@dataclass(frozen=True)
class ExportOptions:
    """How the graph is written and how it is checked against PyTorch."""

    opset: int = param(18, f"ONNX opset version ({MIN_OPSET} or later)", metavar="N")
    tolerance: float = param(
        1e-4,
        "largest absolute difference between ONNX Runtime's and PyTorch's probabilities "
        "(regression: standardised values) that the parity check accepts",
    )
    records: int = param(
        64,
        "records the parity check runs (the first ones of --data, or random "
        "inputs), each also with some modalities masked out",
        metavar="N",
    )
    exporter: str = param("torchscript", "torch.onnx exporter", choices=EXPORTERS)
    include_networks: bool = param(
        True,
        "put the frozen pretrained networks inside the graph (the graph then takes their "
        "prepared inputs); off: the graph takes their features",
        off="--without-networks",
    )

    def __post_init__(self) -> None:
        if not _whole(self.opset) or self.opset < MIN_OPSET:
            raise MmfuseError(
                f"{option('opset', self.opset)}: the ONNX opset must be {MIN_OPSET} or later"
            )
        if not isinstance(self.tolerance, (int, float)) or not 0.0 <= self.tolerance < float("inf"):
            raise MmfuseError(
                f"{option('tolerance', self.tolerance)}: the tolerance must be a finite "
                "number, 0 or more (e.g. 1e-4)"
            )
        if not _whole(self.records) or self.records < 1:
            raise MmfuseError(
                f"{option('records', self.records)}: the parity check needs at least 1 record"
            )
        if self.exporter not in EXPORTERS:
            raise MmfuseError(
                f"unknown exporter {self.exporter!r}; choose one of: {', '.join(EXPORTERS)}"
            )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def export_options(**given: Any) -> ExportOptions:
    """``ExportOptions`` from keywords; an unknown keyword raises, naming the valid ones."""
    valid = [f.name for f in dataclasses.fields(ExportOptions)]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise MmfuseError(
            f"unknown export option(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return ExportOptions(**given)
