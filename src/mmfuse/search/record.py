"""What a preset search records: the ``search`` section of metrics.json and the leaderboard
built from it (also read back by ``load`` and shown by ``mmfuse info``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mmfuse.search.halving import Search, Trial


def search_record(search: Search, best: Trial, ensemble: dict[str, Any] | None,
            ensemble_scores: dict[str, float] | None) -> dict[str, Any]:
    """The ``search`` section of metrics.json: what was tried, scored and kept."""
    rows = []
    dropped = {s["name"]: s["why"] for s in search.skipped if s.get("trained")}
    for t in search.trials:
        rows.append({"name": t.candidate.name, "features": t.candidate.features, **t.candidate.params,
                     "rung": t.rung + 1, "epochs": t.epochs, "epochs_run": len(t.estimator.history_),
                     **{k: plain(search.metric, v) for k, v in t.scores.items()},
                     "seconds": round(t.seconds + sum(r.seconds for r in t.resplits), 2)})
        if t.resplits:
            rows[-1].update(splits=1 + len(t.resplits), mean_selection=plain(search.metric, t.selection))
        if t.candidate.name in dropped:  # trained, then kept out of the choice (search.finetuning)
            rows[-1]["dropped"] = dropped[t.candidate.name]
    record: dict[str, Any] = {
        "preset": search.preset.name, "metric": search.metric,
        "selection": "0.4 clean + 0.2 missing + 0.2 shuffled + 0.2 hidden validation records "
                     "(mmfuse.search.validation)"
                     + ("; finalists: mean over random splits" if best.resplits else ""),
        "time_limit": None if search.deadline is None else round(search.deadline - search.started, 2),
        "seconds": round(time.perf_counter() - search.started, 2),
        "best_single": best.candidate.name,
        "kept": _kept(ensemble) if ensemble else best.candidate.name,
        "trials": rows, "skipped": search.skipped,
    }
    if ensemble_scores is not None:
        record["ensemble_scores"] = {k: plain(search.metric, v) for k, v in ensemble_scores.items()}
    if ensemble:
        record["ensemble"] = ensemble
    return record


def _kept(ensemble: dict[str, Any]) -> str:
    """"bag": one finalist's models on every split; "bags": several finalists' bags mixed;
    "ensemble": several candidates trained on one split."""
    if "splits" not in ensemble:
        return "ensemble"
    return "bag" if len(ensemble["members"]) == 1 else "bags"


def leaderboard_frame(record: dict[str, Any]) -> pd.DataFrame:
    """The trials of a search record, best first: the finalists judged on several splits by
    their mean score, then the others by rung (highest first) and score; a trial kept out of
    the choice (``dropped``) after the finalists."""
    frame = pd.DataFrame(record.get("trials", []))
    if frame.empty:
        return frame
    from mmfuse.evaluation.metrics import HIGHER_IS_BETTER

    sign = 1.0 if HIGHER_IS_BETTER[record["metric"]] else -1.0
    mean = frame["mean_selection"] if "mean_selection" in frame else pd.Series(np.nan, index=frame.index)
    eligible = frame["dropped"].isna() if "dropped" in frame else True
    keys = pd.DataFrame({"judged": mean.notna() & eligible, "mean": sign * mean.fillna(0), "rung": frame["rung"],
                         "score": sign * frame["selection"]})
    order = keys.sort_values(["judged", "mean", "rung", "score"], ascending=False, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def plain(metric: str, oriented: float) -> float:
    """An oriented score (higher is better) back in the metric's own sign."""
    from mmfuse.evaluation.metrics import HIGHER_IS_BETTER

    value = oriented if HIGHER_IS_BETTER[metric] else -oriented
    return round(float(value), 6) if np.isfinite(value) else float("nan")


def shown(metric: str, oriented: float) -> str:
    return f"{plain(metric, oriented):.4f}"
