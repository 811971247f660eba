"""``mmfuse compare --explain``: contribution, correlation and robustness sections for the report.

They are measured on the last fold's held-out records: modality contributions (mean |Shapley|
over presence masks) for every fused model, and for the best fused model the inter-modal
correlation of its embeddings and its robustness curves.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from mmfuse._io import atomic_open
from mmfuse.data.preprocess import Encoded
from mmfuse.data.readers import Table


def explain_sections(
    models: dict[str, Any], best: str, test: Encoded, test_table: Table, task: str, out: Path
) -> str:
    """Computes the sections, writes their CSV / PNG files to ``out`` and returns their HTML."""
    from mmfuse.estimators.explain import explanation_baseline
    from mmfuse.evaluation.contribution import modality_shapley
    from mmfuse.evaluation.correlation import (
        correlation_matrix,
        modality_embeddings,
        pairwise_correlation,
        plot_correlation_heatmap,
    )
    from mmfuse.evaluation.metrics import PRIMARY_METRIC
    from mmfuse._progress import track
    from mmfuse.evaluation.robustness import plot_robustness, robustness_curves, robustness_summary

    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name, est in track(models.items(), len(models), "modality contributions of each model"):
        mods = list(est.model_.modalities)
        baseline = explanation_baseline(est.model_config_, est.model_).embeddings
        result = modality_shapley(est.model_, test.select(mods), task, num_bootstrap=200, baseline=baseline)
        rows[name] = dict(zip(result.modalities, result.mean_abs))
    contributions = pd.DataFrame.from_dict(rows, orient="index").rename_axis("model").reset_index()
    est = models[best]
    pairs = pairwise_correlation(modality_embeddings(est.model_, test), test.mask)
    plot_correlation_heatmap(correlation_matrix(pairs, "cka"), out / "correlation.png",
                             title=f"Inter-modal linear CKA: {best}")
    curves = robustness_curves(est, test_table, clean=test, verbose=True)  # test is already decoded
    summary = robustness_summary(curves, task)
    plot_robustness(curves, out / "robustness.png", PRIMARY_METRIC[task])
    for frame, name in ((contributions, "contributions"), (pairs, "correlation"), (summary, "robustness")):
        with atomic_open(out / f"{name}.csv") as handle:
            frame.to_csv(handle, index=False)
    return _html(contributions, pairs, summary, best, out)


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" style="max-width:100%" src="data:image/png;base64,{data}">'


def _html(contributions: pd.DataFrame, pairs: pd.DataFrame, summary: pd.DataFrame, best: str, out: Path) -> str:
    fmt = lambda v: f"{v:.3f}"  # noqa: E731
    corr = pairs[["modality_a", "modality_b", "n", "cka", "cca_1", "cca_null"]]
    rob = summary[["modality", "corruption", "clean", "worst", "relative_robustness", "effective_robustness"]]
    return f"""
<h2>Which modality drives each model (last fold)</h2>
<p>Mean absolute Shapley value of each modality over presence masks: how much the probability
of the predicted class (or the standardised prediction) moves when the modality is added.</p>
{contributions.to_html(index=False, float_format=fmt, border=0, na_rep="")}
<h2>Inter-modal correlation: {html.escape(best)}</h2>
<p>Linear CKA and the top canonical correlation between modality embeddings; "cca_null" is the
same correlation after shuffling the pairing (chance level).</p>
{_image(out / "correlation.png", "linear CKA heat map")}
{corr.to_html(index=False, float_format=fmt, border=0)}
<h2>Robustness: {html.escape(best)}</h2>
<p>The metric as each modality is corrupted or dropped at increasing severity (0 = clean), with
MultiBench's relative robustness (area under the curve) and effective robustness (area of the
drop from clean).</p>
{_image(out / "robustness.png", "robustness curves")}
{rob.to_html(index=False, float_format=fmt, border=0)}
"""
