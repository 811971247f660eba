"""Text tables and files the CLI prints or writes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmfuse.data.preprocess import Rejection
from mmfuse.errors import MmfuseError


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


def describe_table(data: str, target: str | None, kinds: str | None) -> str:
    """The output of ``mmfuse info``: columns, kinds, missing values, modalities, target."""
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
        example = next((str(v) for v in t.df[col] if isinstance(v, str) or pd.notna(v)), "")
        rows.append((col, kind, missing, _shorten(example, 40)))
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


def list_fusions_table() -> str:
    from mmfuse.fusion import FUSIONS, list_fusions

    rows = []
    for name in list_fusions():
        cls = FUSIONS.get(name)
        rows.append((name, cls.level, "yes" if getattr(cls, "supports_missing", True) else "no",
                     getattr(cls, "description", "")))
    return table(rows, ("fusion", "level", "missing modalities", "description"))


def list_encoders_table() -> str:
    """Every encoder: when it is used, whether it is installed, and what it needs."""
    from mmfuse.encoders import DEFAULT_ENCODERS, ENCODERS, list_encoders
    from mmfuse.pretrained import backbone_of, default_pretrained

    rows = []
    for key in list_encoders():
        kind, name = key.split("/", 1)
        cls = ENCODERS.get(key)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        info = backbone_of(kind, name)
        missing = info.missing() if info else []
        preferred = default_pretrained(kind)
        if preferred is not None and name == preferred.name:
            used = "default" if not missing else "default once installed"
        elif DEFAULT_ENCODERS.get(kind) == name:
            used = "fallback" if preferred is not None and not preferred.missing() else "default"
        else:
            used = "early level" if name == "raw" else ""
        status = "built in" if info is None else ("installed" if not missing else info.install_hint())
        rows.append((kind, name, used, status, _shorten(doc, 60)))
    return table(rows, ("kind", "encoder", "used", "needs", "description"))
