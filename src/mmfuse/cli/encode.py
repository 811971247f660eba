"""``mmfuse encode DATA``: fill the feature cache with the frozen networks a ``fit`` would run,
in this process or as a Ray Data pipeline on a cluster (``--engine ray``); and the engine
options that ``mmfuse index`` shares."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from mmfuse.cli.flags import add_params, given
from mmfuse.distributed.session import ENGINES, INSTALL_HINT, RaySettings, require_ray
from mmfuse.errors import MmfuseError
from mmfuse.params import EstimatorParams, defaults

if TYPE_CHECKING:
    from mmfuse.estimators.encoding import EncodeReport

ENCODE_PARAMS = ("encoders", "pretrained", "kinds", "base_dir", "cache_dir", "device", "num_threads",
                 "missing_files", "verbose")
"""The fit parameters that decide which networks run, on what, and where features go."""
SHOWN_BAD = 10
"""Bad cells printed (``--json`` lists every one)."""


def _out(text: str = "") -> None:
    print(text, flush=True)


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--address``, as ``encode`` and ``index`` take them."""
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help=f"local: in this process (default); ray: a Ray Data pipeline, actors on "
                        f"every core of the cluster (needs {INSTALL_HINT})")
    p.add_argument("--address", help="with --engine ray: the cluster to join, e.g. auto or "
                                     "ray://head:10001 (default: start a local Ray on --threads cores)")


def ray_settings(a: argparse.Namespace, params: dict[str, Any]) -> RaySettings | None:
    """Where ``--engine ray`` runs (None for the local engine); checks that Ray is installed
    before any work starts.

    Raises:
        MmfuseError: ``--address`` without ``--engine ray``; Ray is not installed.
    """
    if a.engine != "ray":
        if a.address:
            raise MmfuseError("--address names a Ray cluster: it applies to --engine ray")
        return None
    require_ray()
    return RaySettings(a.address, params.get("num_threads"), params.get("device", "auto"),
                       params.get("verbose", True))


def _column_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def encode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV, Parquet or JSONL file, or a folder with data.csv")
    p.add_argument("--target", metavar="COL",
                   help="the column a later fit predicts: it is left out, and audio gets the "
                        "prediction default (voice+prosody) as in fit; without it, the defaults of "
                        "retrieval and recommendation")
    p.add_argument("--features", dest="columns", type=_column_list, metavar="COL,...",
                   help="only these columns, as fit's --features (default: every column but --target)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="items per forward pass of a network (default: 32; 4 clips for video, as in fit)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_engine_options(p)
    add_params(p, {"": EstimatorParams}, only=ENCODE_PARAMS)


def encode(a: argparse.Namespace) -> int:
    from mmfuse.estimators.encoding import EncodeReport, encode_locally, plan_encoding
    from mmfuse.estimators.pretrained import feature_cache

    params = {**defaults(EstimatorParams), **given(a, EstimatorParams)}
    settings = ray_settings(a, params)
    plan = plan_encoding(a.data, a.target, a.columns, params["kinds"], params["encoders"],
                         params["pretrained"], params["base_dir"], a.batch_size, params["verbose"])
    if not plan.columns:
        _out(f"{plan.table.name}: no column feeds a frozen pretrained network (text, image, audio "
             "or, with --encoder video=efficientnet-lite0, video); nothing to encode")
        return 0
    cache = feature_cache(params["cache_dir"])
    started = time.perf_counter()
    if settings is None:
        columns = encode_locally(plan, cache, params["device"], params["num_threads"],
                                 params["missing_files"], params["verbose"])
    else:
        from mmfuse.distributed.ray_engine import encode_with_ray

        columns = encode_with_ray(plan, cache, settings, params["missing_files"])
    report = EncodeReport(plan.table.name, a.engine, str(cache.root), len(plan.table.df),
                          time.perf_counter() - started, tuple(columns), tuple(plan.unreadable_lines()))
    _out(json.dumps(report.to_dict(), indent=2) if a.json else format_report(report, params["cache_dir"]))
    return 0


def format_report(report: EncodeReport, cache_dir: str | None) -> str:
    """The summary as people read it: one row per column, where the features went, bad cells."""
    from mmfuse.cli.report import table

    rate = f", {report.records / report.seconds:.1f} records/s" if report.seconds > 0 else ""
    head = (f"{report.data}: {report.records} records, {len(report.columns)} column(s) encoded "
            f"({report.engine} engine) in {report.seconds:.1f} s{rate}")
    lines = [head]
    rows = [(c.column, c.modality, c.encoder, c.encoded, c.cached, c.written, len(c.bad)) for c in report.columns]
    lines.append(table(rows, ("column", "modality", "encoder", "encoded", "cached", "written", "bad")))
    reuse = f"`mmfuse fit ... --cache-dir {cache_dir}`" if cache_dir else "`mmfuse fit`"
    lines.append(f"feature cache: {report.cache_dir} ({reuse} reads these features)")
    bad = report.bad
    if bad:
        lines.append(f"{len(bad)} bad value(s); they have no features:")
        lines += [f"  {r.file}, row {r.row}" + (f", column {r.column!r}" if r.column else "") + f": {r.reason}"
                  for r in bad[:SHOWN_BAD]]
        if len(bad) > SHOWN_BAD:
            lines.append(f"  ... and {len(bad) - SHOWN_BAD} more (--json lists every one)")
    return "\n".join(lines)
