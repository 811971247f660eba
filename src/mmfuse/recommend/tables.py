"""The tables of a recommendation problem, checked and mapped to integer indices.

Ids are compared as text (``42``, ``42.0`` and ``"42"`` are one id). Every row left out is
named: rows with an empty id or an unreadable rating, interactions with an item the catalogue
lacks, social edges that are self-loops or name unknown users. With ``on_bad_record="raise"``
the first kind of problem stops the fit with the list; with ``"skip"`` the rows are dropped and
listed (``rejected.csv``). Duplicate interactions are merged (implicit: one positive; with a
rating: the largest), and said so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._progress import log
from mmfuse.data.preprocess import Rejection, summarise_rejections
from mmfuse.data.readers import Table
from mmfuse.errors import MmfuseError


def id_text(value: Any) -> str | None:
    """An id cell as text; None for an empty cell. Integral floats lose their ``.0``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def require_columns(table: Table, columns: dict[str, str]) -> None:
    """Each ``columns`` entry (what -> column) exists in ``table``."""
    for what, column in columns.items():
        if column not in table.df.columns:
            raise MmfuseError(f"{table.name}: no column {column!r} ({what}); its columns are: "
                              f"{', '.join(map(str, table.df.columns))}")


@dataclass
class Interactions:
    """User-item pairs as indices, one per distinct pair.

    Attributes:
        users: (N,) user indices.
        items: (N,) item indices.
        ratings: (N,) ratings or play counts; None for implicit feedback.
        rejected: The rows left out, with why.
        merged: How many duplicate rows were merged.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    rejected: list[Rejection] = field(default_factory=list)
    merged: int = 0

    def __len__(self) -> int:
        return len(self.users)


class IdMap:
    """Ids (text) <-> consecutive indices, in first-seen order."""

    def __init__(self, ids: list[str] | None = None) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        for i in ids or []:
            self.add(i)

    def add(self, key: str) -> int:
        if key not in self.index:
            self.index[key] = len(self.ids)
            self.ids.append(key)
        return self.index[key]

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: object) -> bool:
        return key in self.index


def read_interactions(
    table: Table, user: str, item: str, rating: str | None, users: IdMap, items: IdMap,
    on_bad_record: str, add_users: bool = True, verbose: bool = True,
) -> Interactions:
    """The interactions of ``table``; users are added to ``users`` (when ``add_users``), items
    must be in ``items`` (the catalogue)."""
    columns = {"--user": user, "--item": item} | ({"--rating": rating} if rating else {})
    require_columns(table, columns)
    df = table.df
    bad: list[Rejection] = []
    u_idx, i_idx, r_val = [], [], []
    ratings = _numbers(df[rating]) if rating else None
    for pos, (row, u, i) in enumerate(zip(df.index, df[user].tolist(), df[item].tolist())):
        uid, iid = id_text(u), id_text(i)
        if uid is None or iid is None:
            bad.append(Rejection(int(row), user if uid is None else item, "empty id", table.name))
            continue
        if iid not in items:
            bad.append(Rejection(int(row), item, f"item {iid!r} is not in the item table", table.name))
            continue
        if ratings is not None and not np.isfinite(ratings[pos]):
            bad.append(Rejection(int(row), str(rating), f"not a number: {str(df[rating].iloc[pos])[:40]!r}", table.name))
            continue
        if uid not in users and not add_users:
            bad.append(Rejection(int(row), user, f"user {uid!r} is unknown to the model", table.name))
            continue
        u_idx.append(users.add(uid))
        i_idx.append(items.index[iid])
        if ratings is not None:
            r_val.append(ratings[pos])
    if bad and on_bad_record == "raise":
        raise MmfuseError(summarise_rejections(table.name, bad))
    if bad and verbose:
        log(f"{table.name}: left out {len(bad)} interaction row(s)")
    frame = pd.DataFrame({"u": u_idx, "i": i_idx, "r": r_val if ratings is not None else 1.0})
    merged = frame.groupby(["u", "i"], sort=False, as_index=False)["r"].max()
    dropped = len(frame) - len(merged)
    if dropped and verbose:
        log(f"{table.name}: merged {dropped} duplicate (user, item) row(s)"
            + (" keeping the largest rating" if rating else ""))
    return Interactions(merged["u"].to_numpy(np.int64), merged["i"].to_numpy(np.int64),
                        merged["r"].to_numpy(np.float64) if rating else None, bad, dropped)


def catalogue_ids(table: Table, column: str, what: str) -> tuple[IdMap, Table]:
    """The ids of an item or user table (each once) and the table without rows lacking an id.

    Raises:
        MmfuseError: The id column is missing, or an id appears twice.
    """
    require_columns(table, {f"the {what} id": column})
    ids = [id_text(v) for v in table.df[column].tolist()]
    seen: dict[str, int] = {}
    for row, key in zip(table.df.index, ids):
        if key is None:
            continue
        if key in seen:
            raise MmfuseError(f"{table.name}: {what} id {key!r} appears twice (rows {seen[key]} and {row}); "
                              f"each {what} must have one row")
        seen[key] = int(row)
    keep = np.array([k is not None for k in ids], dtype=bool)
    if not keep.all():
        log(f"{table.name}: {int((~keep).sum())} row(s) without an id in column {column!r} are left out")
    if not keep.any():
        raise MmfuseError(f"{table.name}: no row has a {what} id in column {column!r}")
    kept = Table(table.df[keep], table.base_dir, table.name, table.bad_lines)
    return IdMap([k for k in ids if k is not None]), kept


def read_social(
    table: Table, users: IdMap, directed: bool, verbose: bool = True
) -> tuple[np.ndarray, np.ndarray, list[Rejection]]:
    """(source, target) user indices of the social edges (both directions unless ``directed``);
    self-loops and edges naming users the data does not know are left out and listed."""
    if len(table.df.columns) < 2:
        raise MmfuseError(f"{table.name}: a social table needs two user-id columns, found "
                          f"{', '.join(map(str, table.df.columns)) or 'none'}")
    a, b = table.df.columns[:2]
    bad: list[Rejection] = []
    edges: set[tuple[int, int]] = set()
    for row, x, y in zip(table.df.index, table.df[a].tolist(), table.df[b].tolist()):
        ux, uy = id_text(x), id_text(y)
        if ux is None or uy is None:
            bad.append(Rejection(int(row), str(a if ux is None else b), "empty user id", table.name))
        elif ux == uy:
            bad.append(Rejection(int(row), str(b), f"self-loop: user {ux!r} names itself", table.name))
        elif ux not in users or uy not in users:
            who = ux if ux not in users else uy
            bad.append(Rejection(int(row), str(a if ux not in users else b),
                                 f"user {who!r} has no interactions and is not in the user table", table.name))
        else:
            edges.add((users.index[ux], users.index[uy]))
            if not directed:
                edges.add((users.index[uy], users.index[ux]))
    if bad and verbose:
        log(f"{table.name}: left out {len(bad)} social edge(s) (self-loops, unknown users)")
    pairs = np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1], bad


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
