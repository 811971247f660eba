"""Evaluation sections shared by ``mmfuse evaluate`` and ``mmfuse explain``: inter-modal
correlation and robustness, as printed tables plus CSV / PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mmfuse._io import atomic_open
from mmfuse.data.preprocess import Encoded

if TYPE_CHECKING:
    from mmfuse.models.fitted import FittedModel


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        frame.to_csv(handle, index=False)


def correlation_section(fitted: FittedModel, enc: Encoded, out: Path | None) -> str:
    """Linear CKA and CCA between every pair of modality embeddings on encoded records."""
    from mmfuse.cli.report import table
    from mmfuse.evaluation.correlation import (
        correlation_matrix,
        modality_embeddings,
        pairwise_correlation,
        plot_correlation_heatmap,
    )

    pairs = pairwise_correlation(modality_embeddings(fitted.model, enc), enc.mask)
    if out is not None:
        _write_csv(pairs, out / "correlation.csv")
        if len(pairs):
            plot_correlation_heatmap(correlation_matrix(pairs, "cka"), out / "correlation.png",
                                     title="Inter-modal linear CKA of the modality embeddings")
    rows = [(r.modality_a, r.modality_b, int(r.n), r.cka, r.cca_1, r.cca_null) for r in pairs.itertuples()]
    return "inter-modal correlation (embeddings)\n" + table(
        rows, ("modality a", "modality b", "n", "linear CKA", "top CCA", "CCA chance level")
    )


def robustness_section(
    fitted: FittedModel, data: Any, out: Path | None, clean: Encoded | None = None, verbose: bool = True
) -> str:
    """The metric as each modality is corrupted or dropped at increasing severity.

    ``clean``: ``data`` already encoded with its target (saves decoding it again).
    """
    from mmfuse.cli.report import table
    from mmfuse.evaluation.metrics import PRIMARY_METRIC
    from mmfuse.evaluation.robustness import plot_robustness, robustness_curves, robustness_summary

    task = fitted.task
    curves = robustness_curves(fitted, data, clean=clean, verbose=verbose)
    summary = robustness_summary(curves, task)
    if out is not None:
        _write_csv(curves, out / "robustness.csv")
        _write_csv(summary, out / "robustness_summary.csv")
        plot_robustness(curves, out / "robustness.png", PRIMARY_METRIC[task])
    rows = [
        (r.modality, r.corruption, r.clean, r.worst, r.relative_robustness, r.effective_robustness)
        for r in summary.itertuples()
    ]
    header = ("modality", "corruption", "clean", "severity 1", "relative rob.", "effective rob.")
    return f"robustness ({PRIMARY_METRIC[task]})\n" + table(rows, header)
