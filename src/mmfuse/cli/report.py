"""Text tables and files the CLI prints or writes.

Imports stay light here (no pandas, no torch at import time): ``mmfuse list`` and ``mmfuse cache
info`` print their tables with this module and answer in well under a second.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmfuse.errors import MmfuseError

if TYPE_CHECKING:
    import pandas as pd

    from mmfuse.data.preprocess import Rejection


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain, aligned text table."""
    cells = [[str(h) for h in header]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def format_metrics(metrics: Mapping[str, float], title: str) -> str:
    return title + "\n" + table(sorted(metrics.items()), ("metric", "value"))


def describe_model(folder: Path) -> str:
    """The output of ``mmfuse info MODEL_DIR``: what the model is, its validation metrics, and
    what a preset tried (the leaderboard), read from config.json and metrics.json."""
    import json

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8")) if (folder / "metrics.json").exists() else {}
    model = config.get("model", {})
    parts = [f"{folder}: {config.get('estimator')} ({model.get('task', '?')}), mmfuse {config.get('mmfuse_version')}",
             f"modalities: {', '.join(f'{m} ({k})' for m, k in config.get('modalities', {}).items())}"]
    if model.get("level") == "ensemble":
        parts.append(f"model: an ensemble of {len(model.get('members', []))} models")
    else:
        parts.append(f"model: {model.get('level')}-level {model.get('fusion')}, encoders "
                     f"{', '.join(f'{m}={e}' for m, e in model.get('encoders', {}).items())}")
    parts += ["", format_metrics(metrics.get("metrics", {}), f"validation metrics ({metrics.get('n_valid', '?')} records)")]
    search = metrics.get("search")
    if search:
        parts += ["", search_table(search)]
    return "\n".join(parts)


def search_table(search: Mapping[str, Any]) -> str:
    """A preset's leaderboard: every trial with its validation scores and time, and what was kept."""
    from mmfuse.search.record import leaderboard_frame

    board = leaderboard_frame(dict(search))
    if "splits" in board:
        board["splits"] = board["splits"].astype("Int64")
    shown = ("name", "rung", "epochs_run", "clean", "missing", "shuffled", "hidden", "selection", "splits",
             "mean_selection", "seconds")
    columns = [c for c in shown if c in board.columns]
    rows = board[columns].astype(object).where(board[columns].notna(), "").itertuples(index=False, name=None)
    lines = [f"preset {search['preset']}: {len(board)} trial(s) in {search.get('seconds', 0):.0f}s, chosen by "
             f"validation {search['metric']} ({search.get('selection', '')})",
             table([tuple(_rounded(v) for v in row) for row in rows], columns)]
    for skipped in search.get("skipped", []):
        what = "trained but not chosen from" if skipped.get("trained") else f"skipped at rung {skipped['rung']}"
        lines.append(f"{what}: {skipped['name']} ({skipped.get('why', 'time limit')})")
    kept = search.get("kept")
    if kept == "bag":
        lines.append(f"kept: {search['best_single']}, its models on all {search['ensemble']['splits']} splits "
                     "averaged (a bag)")
    elif kept in ("bags", "ensemble"):
        members = ", ".join(f"{n} x{w:g}" for n, w in search.get("ensemble", {}).get("members", {}).items())
        bags = (f" of bags ({members}), each finalist's models on all {search['ensemble']['splits']} splits "
                "averaged") if kept == "bags" else f" ({members})"
        lines.append(f"kept: an ensemble{bags}")
    else:
        lines.append(f"kept: {kept}")
    return "\n".join(lines)


def _rounded(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def describe_table(data: str, target: str | None, kinds: str | None) -> str:
    """The output of ``mmfuse info``: columns, kinds, missing values, modalities, target."""
    import pandas as pd

    from mmfuse.data.readers import read_table
    from mmfuse.data.schema import infer_schema
    from mmfuse.data.target import infer_task

    t = read_table(data)
    try:
        schema = infer_schema(t.df, target, kinds, base_dir=t.base_dir)
    except MmfuseError as err:
        raise MmfuseError(f"{t.name}: {err}") from None
    rows = []
    for col in t.df.columns:
        kind = schema.kinds.get(col) or ("target" if col == target else f"ignored ({schema.ignored.get(col, '')})")
        missing = int(t.df[col].isna().sum())
        rows.append((col, kind, missing, _shorten(_example(t.df[col]), 40)))
    parts = [f"{t.name}: {len(t.df)} records, {len(t.df.columns)} columns"]
    if t.bad_lines:
        parts.append(f"{len(t.bad_lines)} unreadable line(s), e.g. row {t.bad_lines[0].row}: {t.bad_lines[0].reason}")
    parts += ["", table(rows, ("column", "kind", "missing", "example")), ""]
    mods = schema.modalities()
    parts.append("modalities: " + ", ".join(f"{m} ({k})" for m, k in mods.items()))
    if target:
        task = infer_task(t.df[target])
        parts.append(f"target: {target!r}, task: {task}")
        if task == "classification":
            # object dtype: pandas' string dtype rejects undecodable bytes (surrogates)
            column = t.df[target]
            labels = pd.Series([str(v) for v in column], index=column.index, dtype=object)
            counts = labels.where(column.notna(), "<missing>").value_counts()
            share = counts / counts.sum()
            parts.append(table([(k, int(v), f"{share[k]:.1%}") for k, v in counts.items()], ("class", "records", "share")))
        else:
            parts.append(t.df[target].describe().to_string())
    return "\n".join(parts)


def _example(values: pd.Series) -> str:
    """The first non-missing value of a column; in-memory media as e.g. "<bytes 1234>"."""
    import pandas as pd

    from mmfuse.data.cells import describe_cell, is_in_memory

    for value in values:
        if is_in_memory(value):
            return describe_cell(value)
        if isinstance(value, str) or pd.notna(value):
            return str(value)
    return ""


def _shorten(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def write_predictions(
    path: str | Path,
    source: Any,
    frame: pd.DataFrame,
    rejected: list[Rejection],
    id_columns: list[str] | None = None,
) -> int:
    """Writes one row per input record (same order); bad records get an ``error`` instead.

    ``id_columns`` (identifier columns of the input, e.g. ``id``) are copied next to ``row`` so
    predictions can be joined back by key.
    """
    import pandas as pd

    from mmfuse._io import atomic_open

    rows = sorted(set(source.df.index.tolist()) | {b.row for b in source.bad_lines})
    out = pd.DataFrame({"row": rows})
    for col in id_columns or []:
        out[col] = out["row"].map(source.df[col])
    out = out.merge(frame, on="row", how="left")
    errors: dict[int, str] = {}
    for r in rejected:
        where = f"column {r.column!r}: " if r.column else ""
        errors[r.row] = errors.get(r.row, "") + ("; " if r.row in errors else "") + where + r.reason
    out["error"] = [errors.get(row, "") for row in out["row"]]
    with atomic_open(path) as handle:
        out.to_csv(handle, index=False)
    return len(out)


def rejection_lines(rejected: Sequence[Rejection], limit: int = 20) -> str:
    """One indented line per rejected value (row, column, reason), at most ``limit``."""
    lines = [f"  row {r.row}" + (f", column {r.column!r}" if r.column else "") + f": {r.reason}"
             for r in rejected[:limit]]
    if len(rejected) > limit:
        lines.append(f"  ... and {len(rejected) - limit} more")
    return "\n".join(lines)


def list_fusions_table(width: int | None = None) -> str:
    """Every fusion operator: its level, whether it takes missing modalities, what it does.

    Read from the source files (no torch import, see ``mmfuse.cli.catalogue``); descriptions
    wrap to ``width`` columns (default: the terminal's).
    """
    from mmfuse.cli.catalogue import entries, summary

    rows = []
    for e in entries("fusion"):
        missing = "yes" if e.attributes.get("supports_missing", True) else "no"
        rows.append((e.name, e.attributes.get("level", ""), missing,
                     e.attributes.get("description") or summary(e.doc)))
    return wrapped_table(rows, ("fusion", "level", "missing modalities", "description"), width)


def list_encoders_table(width: int | None = None) -> str:
    """Every encoder: when it is used, whether it is installed, and what it does (the first
    sentence of its docstring, without markup, wrapped to ``width`` columns)."""
    from mmfuse.cli.catalogue import entries, summary
    from mmfuse.encoders import DEFAULT_ENCODERS
    from mmfuse.pretrained import backbone_of, default_pretrained

    rows = []
    for e in entries("encoders"):
        kind, name = e.name.split("/", 1)
        info = backbone_of(kind, name)
        missing = info.missing() if info else []
        predicting, matching = default_pretrained(kind, True), default_pretrained(kind)
        preferred = [*predicting, *matching]
        if preferred and name in {p.name for p in preferred}:
            role = ("default" if predicting[0] == matching[0] else
                    "default to predict" if name == predicting[0].name else "default to match")
            used = role if not missing else f"{role} once installed"
        elif DEFAULT_ENCODERS.get(kind) == name:
            used = "fallback" if any(not p.missing() for p in preferred) else "default"
        else:
            used = "early level" if name == "raw" else ""
        status = "built in" if info is None else ("installed" if not missing else info.install_hint())
        rows.append((kind, name, used, status, summary(e.doc)))
    return wrapped_table(rows, ("kind", "encoder", "used", "needs", "description"), width)


MIN_WRAP = 20
"""The last column never wraps narrower than this (a narrow terminal scrolls instead)."""


def wrapped_table(
    rows: Sequence[Sequence[Any]], header: Sequence[str], width: int | None = None
) -> str:
    """``table`` whose last column wraps onto continuation lines to fit ``width`` columns
    (default: the terminal's width, 100 when not on a terminal); nothing is cut."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    cells = [[_cell(v) for v in r] for r in rows]
    lead = [max([len(str(header[i]))] + [len(r[i]) for r in cells]) for i in range(len(header) - 1)]
    room = max(width - sum(lead) - 2 * len(lead), MIN_WRAP)
    lines: list[list[str]] = []
    for r in cells:
        parts = textwrap.wrap(r[-1], room, break_on_hyphens=False) or [""]
        lines.append(r[:-1] + parts[:1])
        lines += [[""] * len(lead) + [part] for part in parts[1:]]
    return table(lines, header)
