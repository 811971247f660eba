"""The recommendation benchmark's summaries: the table of each dataset, the goals, and the
mean over the seeds of each kind of data.

Goals: mmfuse's NDCG@K on ``cold_items`` and its NDCG@K and recall@K on ``cold_among_all`` at
least ``WIDE_MARGIN`` times the best other method's (random included: on ``cold_items`` the
collaborative baselines are random by construction); its NDCG@K and recall@K on
``warm_items`` at least ``LEVEL`` times the best baseline's; at the realistic size, training
within ``TRAIN_LIMIT_S`` seconds on ``TRAIN_LIMIT_THREADS`` threads (measured, or projected
when the fit was capped). Every comparison is over all test users; each check also shows the
``oracle`` reference's value (what the data allows), which is never one of the "others".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

WIDE_MARGIN = 1.5
LEVEL = 0.98
TRAIN_LIMIT_S = 900.0
TRAIN_LIMIT_THREADS = 2
VIEWS = {
    "all_items": ("all_items", "all_users"),
    "warm_items": ("warm_items", "all_users"),
    "cold_items": ("cold_items", "all_users"),
    "cold_among_all": ("cold_among_all", "all_users"),
    "cold_users": ("all_items", "cold_users"),
}
"""Table row -> (protocol, user group)."""
REFERENCES = ("mmfuse", "oracle")
"""Methods that are not the baselines mmfuse is compared with."""
COSTS = ("train_seconds", "tune_seconds", "peak_rss_mib", "rss_increase_mib")


def table(methods: dict[str, Any], k: int) -> dict[str, Any]:
    """View -> method -> [NDCG@K, recall@K] (None for a skipped method or an empty view)."""
    out: dict[str, Any] = {}
    for view, (protocol, group) in VIEWS.items():
        out[view] = {}
        for name, method in methods.items():
            cell = method.get("metrics", {}).get(protocol, {}).get(group, {})
            out[view][name] = [cell.get(f"ndcg@{k}"), cell.get(f"recall@{k}")]
    return out


def dataset_goals(methods: dict[str, Any], k: int) -> dict[str, Any]:
    """mmfuse against the best other method on the cold and warm views of one dataset."""
    others = {
        n: m["metrics"] for n, m in methods.items() if n not in REFERENCES and "metrics" in m
    }
    ours, oracle = methods["mmfuse"]["metrics"], methods.get("oracle", {}).get("metrics")

    def compare(protocol: str, metric: str, need: float) -> dict[str, Any]:
        value = ours[protocol]["all_users"].get(metric)
        if value is None:
            return {"met": None, "note": f"no test row in {protocol}"}
        best = max(others, key=lambda n: others[n][protocol]["all_users"][metric])
        top = others[best][protocol]["all_users"][metric]
        ratio = value / top if top > 0 else math.inf
        ceiling = oracle[protocol]["all_users"].get(metric) if oracle else None
        return {"mmfuse": value, "best_other": best, "best_other_value": top,
                "ratio": round(ratio, 3), "met": ratio >= need, "oracle": ceiling}  # fmt: skip

    ndcg, recall = f"ndcg@{k}", f"recall@{k}"
    cold = {
        f"cold_items {ndcg}": compare("cold_items", ndcg, WIDE_MARGIN),
        f"cold_among_all {ndcg}": compare("cold_among_all", ndcg, WIDE_MARGIN),
        f"cold_among_all {recall}": compare("cold_among_all", recall, WIDE_MARGIN),
    }
    warm = {
        f"warm_items {ndcg}": compare("warm_items", ndcg, LEVEL),
        f"warm_items {recall}": compare("warm_items", recall, LEVEL),
    }
    return {"cold_items_wide_margin": _all_met(cold), "warm_items_level": _all_met(warm)}


def _all_met(checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    results = [c["met"] for c in checks.values() if c["met"] is not None]
    return {"met": all(results) if results else None, "checks": checks}


def overall_goals(datasets: dict[str, Any], k: int, threads: int) -> dict[str, Any]:
    """Each goal over every dataset (met when met on each that measured it)."""
    targets = {
        "cold_items_wide_margin": f"mmfuse >= {WIDE_MARGIN}x the best other method: NDCG@{k} on "
        f"cold_items, NDCG@{k} and recall@{k} on cold_among_all",
        "warm_items_level": f"mmfuse >= {LEVEL}x the best baseline: NDCG@{k} and recall@{k} on "
        "warm_items",
    }
    out: dict[str, Any] = {}
    for goal, target in targets.items():
        by = {name: d["goals"][goal]["met"] for name, d in datasets.items()}
        measured = [m for m in by.values() if m is not None]
        out[goal] = {"target": target, "met": all(measured) if measured else None, "by_dataset": by}
    out["train_15_min_2_cores"] = _train_goal(datasets, threads)
    return out


def _train_goal(datasets: dict[str, Any], threads: int) -> dict[str, Any]:
    target = (f"mmfuse trains at the realistic size within {TRAIN_LIMIT_S:.0f} s on "
              f"{TRAIN_LIMIT_THREADS} threads")  # fmt: skip
    fits = {n: d["methods"]["mmfuse"] for n, d in datasets.items() if n.startswith("realistic")}
    if not fits:
        return {"target": target, "met": None, "note": "measured with --data realistic"}
    seconds = {n: m["projected_train_seconds"] if m["capped"] else m["train_seconds"]
               for n, m in fits.items()}  # fmt: skip
    if threads != TRAIN_LIMIT_THREADS:
        return {"target": target, "met": None, "seconds": seconds,
                "note": f"measured with --threads {threads}"}  # fmt: skip
    met = all(s <= TRAIN_LIMIT_S for s in seconds.values())
    return {"target": target, "met": met, "seconds": seconds}


def summary(datasets: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """Per kind of data, the mean over its seeds of every table cell and of the costs."""
    out: dict[str, Any] = {}
    for kind in kinds:
        runs = [d for name, d in datasets.items() if name.startswith(kind)]
        if not runs:
            continue
        views = {
            view: {m: _mean_pairs([r["table"][view][m] for r in runs]) for m in cells}
            for view, cells in runs[0]["table"].items()
        }
        costs = {}
        for m in runs[0]["methods"]:
            costs[m] = {key: _mean([r["methods"][m].get(key) for r in runs]) for key in COSTS}
            p50 = [r["methods"][m].get("recommend_ms", {}).get("one_user_p50") for r in runs]
            costs[m]["recommend_one_user_p50_ms"] = _mean(p50)
        out[kind] = {"seeds": len(runs), "table": views, "costs": costs}
    return out


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 4) if present else None


def _mean_pairs(pairs: list[list[Any]]) -> list[float | None]:
    return [_mean([p[j] for p in pairs]) for j in range(2)]
