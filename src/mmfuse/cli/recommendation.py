"""CLI of recommendation models: fit --task recommendation, evaluate, recommend."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mmfuse.cli.flags import add_params
from mmfuse.errors import MmfuseError
from mmfuse.params import RUN_TIME, RecommenderParams


def _out(text: str = "") -> None:
    print(text, flush=True)


def fit_recommendation(a: argparse.Namespace, params: dict[str, Any]) -> int:
    """``mmfuse fit INTERACTIONS --task recommendation --user U --item I [--items ...] --out DIR``."""
    from mmfuse.estimators.recommender import MultimodalRecommender

    if a.target:
        raise MmfuseError("--task recommendation learns from --user and --item and takes no --target")
    if a.valid or a.resume:
        raise MmfuseError("--task recommendation holds out --valid-fraction of each user's interactions "
                          "itself; --valid and --resume are not supported")
    est = MultimodalRecommender(**params)
    est.fit(a.data, out_dir=a.out)
    shown = ", ".join(f"{k[len('valid_'):]} {v:.4f}" for k, v in est.metrics_.items())
    if shown:
        _out(f"validation ({est.n_valid_} held-out interactions, kept epoch {est.kept_epoch_}): {shown}")
    else:
        _out(f"no interactions held out for validation (every user has a single one); trained {est.kept_epoch_} epochs")
    if est.rejected_:
        _out(f"left out {len(est.rejected_)} row(s): see {Path(a.out) / 'rejected.csv'}")
    _out(f"model written to {a.out} ({len(est.users_)} users, {len(est.items_)} items)")
    return 0


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise MmfuseError(f"--k takes cut-offs like 10,20, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise MmfuseError(f"--k takes positive cut-offs like 10,20, got {text!r}")
    return ks


def evaluate_recommendation(est: Any, a: argparse.Namespace) -> int:
    """``mmfuse evaluate REC TEST --k 10,20 [--candidates FILE] [--relevant-min R]``."""
    from mmfuse._io import write_json
    from mmfuse.cli.report import table

    if a.correlation or a.robustness:
        raise MmfuseError(f"{a.model} is a recommendation model; --correlation and --robustness are for "
                          "classifiers and regressors")
    result = est.evaluate(a.data, parse_ks(a.k or "10,20"), a.candidates, a.relevant_min)
    metrics = result["metrics"]
    ks = sorted({int(k.split("@")[1]) for k in metrics})
    names = ("recall", "ndcg", "hit", "map", "coverage")
    rows = [(label, f"@{k}", *(f"{part[f'{n}@{k}']:.4f}" for n in names))
            for k in ks for label, part in (("mmfuse", metrics), ("most popular", result["most_popular"]))]
    _out(f"ranking {result['n_items_ranked']} items for {result['n_users']} users "
         f"({result['n_cold_users']} unknown to the model) of {a.data}")
    _out(table(rows, ("model", "K", *names)))
    rejected = result.pop("rejected")
    if rejected:
        from mmfuse.cli.modeling import report_skipped

        report_skipped(rejected, len({r.row for r in rejected}), Path(a.out) if a.out else None, a.json)
    if a.json:
        write_json(a.json, result | {"rejected": [{"row": r.row, "column": r.column, "reason": r.reason}
                                                  for r in rejected]})
    return 0


def recommend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="recommendation model directory (`mmfuse fit --task recommendation`)")
    p.add_argument("users", nargs="?", help="a table of users (its user-id column, or its first column)")
    p.add_argument("--user", action="append", default=[], metavar="ID", help="a user id (repeat for several)")
    p.add_argument("-k", type=int, default=10, help="items per user (default: 10)")
    p.add_argument("--include-seen", action="store_true", help="also list items the user already interacted with")
    p.add_argument("--out", help="CSV to write (user, rank, item, score); default: print")
    p.add_argument("--json", action="store_true", help="print the recommendations as JSON")
    add_params(p, {"": RecommenderParams}, only=RUN_TIME)


def recommend(a: argparse.Namespace) -> int:
    from mmfuse.cli.flags import given
    from mmfuse.cli.report import table
    from mmfuse.estimators.io import load
    from mmfuse.estimators.output_dir import check_output_file

    if not a.user and not a.users:
        raise MmfuseError("name the users: --user ID (repeatable) or a table of users")
    if a.out:
        check_output_file(a.out, data=a.users, model=a.model)
    est = load(a.model, verbose=False, **{k: v for k, v in given(a, RecommenderParams).items() if k in RUN_TIME})
    if est.task_ != "recommendation":
        raise MmfuseError(f"{a.model} is a {type(est).__name__}, not a recommendation model")
    users = [*a.user, *(user_ids(est, a.users) if a.users else [])]
    if not users:
        raise MmfuseError("name the users: --user ID (repeatable) or a table of users")
    unknown = [u for u in users if u not in est.users_]
    if unknown:
        print(f"note: {len(unknown)} user(s) unknown to the model (e.g. {unknown[0]!r}) get the most "
              "popular items", file=sys.stderr)
    recs = est.recommend(users, a.k, exclude_seen=not a.include_seen)
    if a.out:
        recs.to_csv(a.out, index=False)
        _out(f"wrote {len(recs)} recommendations for {len(set(users))} user(s) to {a.out}")
    elif a.json:
        _out(json.dumps(json.loads(recs.to_json(orient="records")), indent=2))
    else:
        _out(table([(r.user, r.rank, r.item, f"{r.score:.4f}") for r in recs.itertuples()],
                   ("user", "rank", "item", "score")))
    return 0


def user_ids(est: Any, path: str) -> list[str]:
    """The user ids of a table, in its order: its column named like the model's user column,
    else its first column (empty cells left out)."""
    from mmfuse.data.readers import read_table
    from mmfuse.recommend.tables import id_text

    frame = read_table(path).df
    column = est.user if est.user in frame.columns else frame.columns[0]
    return [u for u in map(id_text, frame[column]) if u is not None]


def explain_recommendation(est: Any, a: argparse.Namespace, out: Path) -> int:
    """``mmfuse explain REC USERS.csv --out DIR``: what made each user's top items score."""
    from mmfuse._io import write_json
    from mmfuse.cli.report import table

    users = list(dict.fromkeys(user_ids(est, a.data)))[: a.max_records]
    values = est.explain(users, k=10)
    out.mkdir(parents=True, exist_ok=True)
    players = [c for c in values.columns if c not in ("user", "rank", "item", "score", "base")]
    values.to_csv(out / "contributions.csv", index=False)
    summary = {"players": players, "users": int(values["user"].nunique()), "pairs": len(values),
               "mean_abs": {p: float(values[p].abs().mean()) for p in players},
               "mean": {p: float(values[p].mean()) for p in players}, "base": float(values["base"].mean()),
               "units": "contribution to the user-item score (cosine)"}
    write_json(out / "contributions.json", summary)
    rows = sorted(((p, f"{summary['mean_abs'][p]:.4f}", f"{summary['mean'][p]:+.4f}") for p in players),
                  key=lambda r: -float(r[1]))
    _out(f"what made the top 10 items of {summary['users']} user(s) score (Shapley values over presence masks)")
    _out(table(rows, ("signal", "mean |Shapley|", "mean Shapley")))
    _out(f"\nwrote {out / 'contributions.csv'} and {out / 'contributions.json'}")
    return 0
