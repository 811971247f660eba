"""``mmfuse compare``: unimodal baselines and fusion operators under one protocol.

Protocol: K stratified folds (plain K-fold for regression) with a fixed seed. In each fold the
preprocessing is fitted on the fold's training records only; 20 % of them are held out for
early stopping (and for fitting decision-level combiners); every model gets the same epoch
budget, patience and seed, and is scored on the fold's test records. Decision-level operators
share one set of per-modality models per fold (that is what late fusion is: the models are
trained on their own; only the combination differs). A fold's records are streamed to disk as
``fit`` streams them (``--stream``, or by itself when they would not fit in memory).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmfuse._memory import PeakMemory
from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.data.readers import Table, read_table
from mmfuse.data.target import infer_task
from mmfuse.errors import MmfuseError
from mmfuse.estimators.base import DataLike, MultimodalEstimator
from mmfuse.estimators.pipeline import Pipeline, stratifiable, take_records
from mmfuse.estimators.streaming import record_folder
from mmfuse.params import CompareParams, EstimatorParams, PresetParams, defaults, names

SECONDARY = {"classification": "f1_macro", "regression": "r2"}
COMPARE_DEFAULTS = {n: v for n, v in defaults(CompareParams).items() if v != defaults(EstimatorParams)[n]}
"""Where compare's shared parameters differ from fit's (a smaller epoch budget per model)."""


@dataclass(frozen=True)
class Candidate:
    """One row of the leaderboard: a unimodal baseline or a fusion operator."""

    name: str
    group: str  # "unimodal" or "fused"
    level: str
    fusion: str
    modalities: tuple[str, ...]


def parse_fusions(fusions: str | Sequence[str] | None) -> list[str]:
    """``"all"``, ``"a,b"`` or a list -> registered fusion names (validated)."""
    from mmfuse.fusion import FUSIONS, list_fusions

    if fusions is None or fusions == "all":
        return list_fusions()
    names = [f.strip() for f in fusions.split(",")] if isinstance(fusions, str) else list(fusions)
    for name in names:
        if name not in FUSIONS:
            raise MmfuseError(f"unknown fusion {name!r}; choose one of: {', '.join(list_fusions())}, all")
    return list(dict.fromkeys(names))


def candidates(modalities: Sequence[str], fusions: Sequence[str], unimodal: bool = True) -> list[Candidate]:
    """The grid: each modality alone, then every requested fusion on all modalities."""
    from mmfuse.fusion import fusion_level

    grid = []
    if unimodal:
        grid += [Candidate(f"{m} only", "unimodal", "feature", "concat", (m,)) for m in modalities]
    grid += [Candidate(f, "fused", fusion_level(f), f, tuple(modalities)) for f in fusions]
    return grid


def compare(
    data: DataLike,
    target: str,
    fusions: str | Sequence[str] | None = "all",
    folds: int = 3,
    out_dir: str | Path | None = None,
    task: str = "auto",
    unimodal: bool = True,
    verbose: bool = True,
    explain: bool = False,
    **params: Any,
) -> pd.DataFrame:
    """Runs the comparison and returns the leaderboard (one row per candidate, best first).

    Args:
        data: Records (path or DataFrame) with the target column.
        target: Column to predict.
        fusions: Fusion names, ``"all"`` or None (all).
        folds: Number of folds (at least 2).
        out_dir: If given, writes ``leaderboard.csv``, ``folds.csv`` and ``report.html`` there.
        task: "auto", "classification" or "regression".
        unimodal: Include each modality alone as a baseline.
        verbose: Print one line per trained model.
        explain: Add contribution, correlation and robustness sections to the report
            (measured on the last fold's held-out records; needs ``out_dir``).
        **params: Estimator parameters shared by every candidate (epochs, batch_size, seed,
            kinds, features, encoders, modality_dropout, num_threads, ...), with the defaults
            of ``mmfuse.params.CompareParams``.
    """
    from mmfuse.training.device import set_threads

    if folds < 2:
        raise MmfuseError(f"--folds must be at least 2, got {folds}")
    table = read_table(data)
    if target not in table.df.columns:
        raise MmfuseError(f"{table.name}: unknown target column {target!r}; the columns are: {', '.join(table.df.columns)}")
    task = infer_task(table.df[target]) if task == "auto" else task
    proto = _estimator(task, params)
    set_threads(proto.num_threads)
    pipeline = Pipeline.plan(table, target, task, proto)  # pretrained encoders and cache, as in fit
    grid = candidates(list(pipeline.modalities), parse_fusions(fusions), unimodal)
    records: list[dict[str, Any]] = []
    total = len(grid) * folds
    kept: dict[str, MultimodalEstimator] = {}
    splits = _folds(table, target, task, folds, proto.seed)
    with record_folder(proto.store_dir, None) as folder:
        for fold, (train_rows, test_rows) in enumerate(splits):
            fold_pipeline = Pipeline.for_schema(pipeline.schema, task, proto)
            # every class is known, even one absent from this fold's training part
            fold_pipeline.fit(Table(table.df.loc[train_rows], table.base_dir, table.name), everything=table)
            pre = fold_pipeline.preprocessor
            encoded = _fold_records(fold_pipeline, table, proto, folder / f"fold{fold}", verbose and fold == 0)
            encoded.rejected = []
            parts = _fold_parts(encoded, train_rows, test_rows, task, proto.seed)
            keep = kept if explain and fold == folds - 1 else None
            for result in _run_fold(grid, pre, parts, task, proto, keep):
                result["fold"] = fold
                records.append(result)
                if verbose:
                    done = len(records)
                    log(f"[{done}/{total}] fold {fold + 1}/{folds}  {result['name']:<22} "
                        f"{_primary(task)}={result[_primary(task)]:.4f}  ({result['train_seconds']:.1f}s)")
        per_fold = pd.DataFrame(records)
        board = leaderboard(per_fold, task)
        if out_dir is not None:
            from mmfuse.estimators.compare_report import write_outputs

            extra = ""
            if explain and kept:
                from mmfuse.estimators.compare_explain import explain_sections

                if verbose:
                    log("explaining the models of the last fold (contributions, correlation, robustness)")
                fused = {n: e for n, e in kept.items() if n in set(board.loc[board["group"] == "fused", "name"])}
                best = board.loc[board["group"] == "fused", "name"].iloc[0]
                test_table = Table(table.df.loc[splits[-1][1]], table.base_dir, table.name)
                test = replace(parts[2], inputs={m: np.asarray(x) for m, x in parts[2].inputs.items()})  # off disk
                extra = explain_sections(fused, best, test, test_table, task, Path(out_dir) / "explain")
            write_outputs(Path(out_dir), board, per_fold, task, table.name, target, folds, extra)
    return board


def _fold_records(pipeline: Pipeline, table: Table, proto: MultimodalEstimator, folder: Path,
                  verbose: bool) -> Encoded:
    """Every record of ``table`` prepared with one fold's preprocessing: in memory, or streamed
    into ``folder`` as ``fit`` would (``--stream``, or records too big for memory)."""
    from mmfuse.estimators.streaming import prepare_streamed, should_stream

    if should_stream(len(table.df), pipeline.preprocessor.input_specs(), proto.stream, verbose):
        return prepare_streamed(pipeline, table, folder)
    return pipeline.prepare(table)


def _estimator(task: str, params: dict[str, Any]) -> MultimodalEstimator:
    from mmfuse.estimators.classifier import MultimodalClassifier
    from mmfuse.estimators.regressor import MultimodalRegressor

    cls = MultimodalClassifier if task == "classification" else MultimodalRegressor
    for banned in ("fusion", "level"):
        if banned in params:
            raise MmfuseError(f"compare sets {banned!r} itself; pass fusions=... instead")
    for banned in names(PresetParams):
        if banned in params:
            raise MmfuseError(f"compare trains every candidate under one protocol; {banned!r} belongs to fit")
    try:
        return cls(**{**COMPARE_DEFAULTS, "verbose": False, **params})
    except TypeError as err:
        raise MmfuseError(f"compare: {err}") from None


def _primary(task: str) -> str:
    from mmfuse.evaluation.metrics import PRIMARY_METRIC

    return PRIMARY_METRIC[task]


def _folds(table: Table, target: str, task: str, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    labels = np.array([str(v) for v in table.df[target]], dtype=object)
    index = table.df.index.to_numpy()
    if task == "classification":
        # Always stratify: the preprocessing of a fold only knows the classes of its training
        # part, so a class must never sit wholly in one test part (with fewer than `folds`
        # records a class gets at most one per test part; sklearn warns, the split is fine).
        present = table.df[target].notna().to_numpy() & (labels != "")
        values, counts = np.unique(labels[present], return_counts=True)
        if counts.size and counts.min() < 2:
            raise MmfuseError(
                f"{table.name}: class {values[counts.argmin()]!r} of {target!r} has a single record; "
                f"a {folds}-fold comparison needs at least 2 records per class (drop or merge it)"
            )
        if counts.size and counts.max() < folds:
            raise MmfuseError(
                f"{table.name}: --folds {folds} is more than the {counts.max()} records of the largest class "
                f"of {target!r}; use --folds {max(2, counts.max())} or fewer"
            )
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            return [(index[a], index[b]) for a, b in splitter.split(index, labels)]
    if len(index) < folds:
        raise MmfuseError(f"{table.name}: --folds {folds} is more than its {len(index)} records; "
                          f"use --folds {len(index)} or fewer")
    splitter = KFold(folds, shuffle=True, random_state=seed)
    return [(index[a], index[b]) for a, b in splitter.split(index)]


def _fold_parts(
    enc: Encoded, train_rows: np.ndarray, test_rows: np.ndarray, task: str, seed: int
) -> tuple[Encoded, Encoded, Encoded]:
    """(train, valid, test) records of one fold; valid is 20 % of the fold's training part."""
    from sklearn.model_selection import train_test_split

    in_train = np.isin(enc.rows, train_rows)
    pool = take_records(enc, in_train)
    test = take_records(enc, np.isin(enc.rows, test_rows))

    labels = pool.targets if task == "classification" else None
    if not stratifiable(labels, 0.2):
        labels = None
    tr, va = train_test_split(np.arange(len(pool)), test_size=0.2, random_state=seed, stratify=labels)
    keep = np.zeros(len(pool), dtype=bool)
    keep[tr] = True
    return take_records(pool, keep), take_records(pool, ~keep), test


def _run_fold(
    grid: list[Candidate],
    pre: Preprocessor,
    parts: tuple[Encoded, Encoded, Encoded],
    task: str,
    proto: MultimodalEstimator,
    keep: dict[str, MultimodalEstimator] | None = None,
) -> Iterator[dict[str, Any]]:
    late = [c for c in grid if c.level == "late"]
    for cand in grid:  # a generator, so progress is reported after every model
        if cand.level != "late":
            est = proto.__class__(**{**proto.get_params(), "fusion": cand.fusion, "level": cand.level})
            yield _fit_and_score(est, cand, pre, parts, task, keep)
    if late:
        yield from _late_candidates(late, pre, parts, task, proto, keep)


def _fit_and_score(
    est: MultimodalEstimator,
    cand: Candidate,
    pre: Preprocessor,
    parts: tuple[Encoded, Encoded, Encoded],
    task: str,
    keep: dict[str, MultimodalEstimator] | None = None,
) -> dict[str, Any]:
    mods = list(cand.modalities)
    train, valid, test = (p.select(mods) for p in parts)
    with PeakMemory() as memory:
        started = time.perf_counter()
        est.fit_encoded(pre.restrict(mods), train, valid)
        seconds = time.perf_counter() - started
    if keep is not None:
        keep[cand.name] = est
    return _record(cand, est, est.score_prepared(test), seconds, memory.peak_mb, task)


def _late_candidates(
    late: list[Candidate],
    pre: Preprocessor,
    parts: tuple[Encoded, Encoded, Encoded],
    task: str,
    proto: MultimodalEstimator,
    keep: dict[str, MultimodalEstimator] | None = None,
) -> list[dict[str, Any]]:
    """Trains the per-modality models once, then scores every decision-level combiner."""
    from mmfuse.estimators.training import held_out, with_combiner

    base = proto.__class__(**{**proto.get_params(), "fusion": "mean", "level": "late"})
    first = _fit_and_score(base, late[0], pre, parts, task)
    test = parts[2]
    records = held_out(base.model_, parts[1])
    results = []
    for cand in late:
        started = time.perf_counter()
        est = copy.copy(base)
        est.model_ = with_combiner(base.model_, cand.fusion, task, base.model_config_.num_outputs, records)
        est.model_config_ = replace(base.model_config_, fusion=cand.fusion)
        seconds = first["train_seconds"] + time.perf_counter() - started
        if keep is not None:
            keep[cand.name] = est
        results.append(_record(cand, est, est.score_prepared(test), seconds, first["peak_memory_mb"], task))
    return results


def _record(
    cand: Candidate, est: MultimodalEstimator, metrics: dict[str, float], seconds: float, memory_mb: float, task: str
) -> dict[str, Any]:
    primary, secondary = _primary(task), SECONDARY[task]
    return {
        "name": cand.name, "group": cand.group, "level": cand.level, "fusion": cand.fusion,
        "modalities": "+".join(cand.modalities), primary: metrics[primary], secondary: metrics[secondary],
        "train_seconds": seconds, "parameters": est.model_.num_parameters(),
        "peak_memory_mb": memory_mb, "epochs": len(est.history_),
    }


def leaderboard(per_fold: pd.DataFrame, task: str) -> pd.DataFrame:
    """Mean and std over folds per candidate, best first."""
    from mmfuse.evaluation.metrics import HIGHER_IS_BETTER

    primary, secondary = _primary(task), SECONDARY[task]
    keys = ["name", "group", "level", "fusion", "modalities"]
    grouped = per_fold.groupby(keys, sort=False)
    board = grouped.agg(
        **{
            f"{primary}_mean": (primary, "mean"), f"{primary}_std": (primary, "std"),
            f"{secondary}_mean": (secondary, "mean"), f"{secondary}_std": (secondary, "std"),
            "train_seconds": ("train_seconds", "mean"), "parameters": ("parameters", "max"),
            "peak_memory_mb": ("peak_memory_mb", "mean"), "folds": ("fold", "nunique"),
        }
    ).reset_index()
    board = board.fillna({f"{primary}_std": 0.0, f"{secondary}_std": 0.0})
    ascending = not HIGHER_IS_BETTER[primary]
    return board.sort_values(f"{primary}_mean", ascending=ascending, kind="stable").reset_index(drop=True)
