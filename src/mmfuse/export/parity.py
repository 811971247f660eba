"""Whether ONNX Runtime computes what PyTorch computes: the check every export must pass.

The reference is the fitted model in PyTorch eager mode, run the way mmfuse runs it: the frozen
networks' features computed by the frozen feature extractor (the code ``fit`` and ``predict``
use), then the model and its task's output step (``FittedModel.outputs``). Each record is
compared twice: with its own presence mask, and with some of its modalities masked out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse.data.preprocess import Encoded
from mmfuse.models.fitted import FittedModel

if TYPE_CHECKING:
    from mmfuse.export.runtime import OnnxModel


@dataclass(frozen=True)
class ParityResult:
    """How far ONNX Runtime's outputs are from PyTorch's.

    Attributes:
        max_abs_diff: Largest absolute difference over every compared value (NaN: an output
            that is not finite on one side).
        output: The compared output ("probabilities", or "value" for a regressor).
        records: Distinct records compared.
        rows: Rows compared (each record with its own mask and with modalities masked out).
        source: Where the records came from ("random records" or the data file).
        tolerance: The largest accepted difference.
    """

    max_abs_diff: float
    output: str
    records: int
    rows: int
    source: str
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff) and self.max_abs_diff <= self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """One line: the difference, on what, against which tolerance."""
        return (
            f"max abs difference {self.max_abs_diff:.1e} on {self.output} over {self.records} "
            f"records + {self.rows - self.records} with modalities masked out ({self.source}; "
            f"tolerance {self.tolerance:.0e})"
        )


def masked_copies(mask: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Each modality's presence with each present modality masked out with probability 1/2 (at
    least one, in every record where any is present)."""
    rng = np.random.default_rng(seed)
    modalities = list(mask)
    present = np.stack([np.asarray(mask[m], dtype=bool) for m in modalities], axis=1)  # (N, M)
    drop = rng.random(present.shape) < 0.5
    untouched = present.any(1) & ~(drop & present).any(1)
    drop[untouched, np.argmax(present, axis=1)[untouched]] = True
    return {m: present[:, j] & ~drop[:, j] for j, m in enumerate(modalities)}


def network_features(records: Encoded, networks: Mapping[str, str]) -> Encoded:
    """The records with the prepared inputs of the modalities in ``networks`` (modality ->
    frozen network) replaced by the network's features, computed by mmfuse's frozen feature
    extractor."""
    from mmfuse.encoders.backbones import FrozenExtractor

    inputs = dict(records.inputs)
    for m, backbone in networks.items():
        extractor = FrozenExtractor(backbone, "cpu")
        x, step = inputs[m], extractor.batch_size
        inputs[m] = np.concatenate([extractor(x[i : i + step]) for i in range(0, len(x), step)])
    return Encoded(inputs, dict(records.mask), records.rows)


def reference_outputs(
    fitted: FittedModel, records: Encoded, networks: Mapping[str, str]
) -> np.ndarray:
    """PyTorch's outputs for records prepared for the graph, whose modalities in ``networks``
    (modality -> frozen network in the graph) hold the network's prepared input."""
    return fitted.outputs(network_features(records, networks))


def check_parity(
    onnx_model: OnnxModel,
    fitted: FittedModel,
    records: Encoded,
    networks: Mapping[str, str],
    tolerance: float,
    source: str,
) -> ParityResult:
    """Runs ``records``, then the same records with modalities masked out, through ONNX
    Runtime and through PyTorch.

    ONNX Runtime sees the first record on its own, then batches of 32 (``OnnxModel.predict``),
    so a graph that kept the batch size it was traced with fails here.
    """
    if len(records) == 0:
        raise ValueError("no records to compare")
    masks = [records.mask, masked_copies(records.mask)]
    features = network_features(records, networks)  # once: both masks share the inputs
    expected = np.concatenate(
        [fitted.outputs(Encoded(features.inputs, mask, records.rows)) for mask in masks]
    )
    head, rest = (_rows(records.inputs, part) for part in (slice(0, 1), slice(1, None)))
    got = np.concatenate(
        [
            onnx_model.predict(head, _rows(records.mask, slice(0, 1))),  # a batch of one
            onnx_model.predict(rest, _rows(records.mask, slice(1, None))),
            onnx_model.predict(records.inputs, masks[1]),
        ]
    )
    if got.shape != expected.shape:
        raise ValueError(
            f"ONNX Runtime gave outputs of shape {got.shape}, PyTorch {expected.shape}"
        )
    with np.errstate(invalid="ignore"):
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    worst = float(diff.max()) if np.isfinite(diff).all() else float("nan")
    return ParityResult(
        worst, onnx_model.output_name, len(records), 2 * len(records), source, tolerance
    )


def _rows(arrays: Mapping[str, np.ndarray], rows: slice) -> dict[str, np.ndarray]:
    return {m: x[rows] for m, x in arrays.items()}
