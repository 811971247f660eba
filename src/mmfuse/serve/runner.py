"""A batch of requests through a model: predictions with their modality contributions, and
searches. These run on the server's worker thread; each returns one result per request, a
``RequestError`` standing for a request that could not be served (a bad cell, named)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmfuse.data.preprocess import Encoded, Rejection
from mmfuse.data.readers import Table
from mmfuse.errors import MmfuseError
from mmfuse.serve.catalogue import MEDIA_KINDS, ServedIndex, ServedModel
from mmfuse.serve.errors import RequestError

TABLE_NAME = "request"


@dataclass(frozen=True)
class PredictJob:
    """One record to predict; ``explain`` adds the fusion weights and full coalition value."""

    record: dict[str, Any]
    explain: bool = False


@dataclass(frozen=True)
class SearchJob:
    """One query: a text or a media file's bytes, of ``kind``, for ``k`` hits."""

    query: str | bytes
    kind: str
    k: int


@torch.no_grad()
def predict_batch(model: ServedModel, jobs: Sequence[PredictJob], base_dir: Path) -> list[Any]:
    """Predictions, probabilities and Shapley contributions of the modalities, per job."""
    from mmfuse.evaluation.contribution import UNITS

    est = model.estimator
    fitted = est.fitted_model
    columns = [f.name for f in model.inputs]
    df = pd.DataFrame([[job.record.get(c) for c in columns] for job in jobs], columns=columns, dtype=object)
    enc = est.pipeline_.prepare(Table(df, base_dir, TABLE_NAME), False, "skip", allow_empty=True)
    results: list[Any] = [_refusal(enc.rejected, i) for i in range(len(jobs))]
    if len(enc) == 0:
        return results
    outputs, values, base, full, distrusted = _contributions(fitted, enc)
    mods = list(fitted.model.modalities)
    for pos, row in enumerate(enc.rows):
        out = outputs[pos]
        if not np.all(np.isfinite(out)):
            results[row] = RequestError(422, "the model's output is not finite for this record "
                                        "(an input far outside the training data?)")
            continue
        result: dict[str, Any] = {"model": model.name, "task": fitted.task}
        if fitted.task == "classification":
            classes = model.classes or []
            result["prediction"] = classes[int(out.argmax())]
            result["probabilities"] = {c: float(p) for c, p in zip(classes, out)}
        else:
            result["prediction"] = float(fitted.decode(np.asarray([out]))[0])
            result["probabilities"] = None
        result["contributions"] = {m: float(v) for m, v in zip(mods, values[pos])}
        result["contribution_units"] = UNITS[fitted.task]
        result["base"] = float(base[pos])
        result["missing"] = [m for m in mods if not enc.mask[m][pos]]
        result["distrusted"] = [m for m in mods if distrusted[m][pos]]
        if jobs[row].explain:
            result["full"] = float(full[pos])
            result["fusion_weights"] = _weights(fitted, enc, pos)
        results[row] = result
    return results


def _contributions(fitted: Any, enc: Encoded
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The predictions (N, C) or (N,), the (N, M) Shapley values of the modalities, the
    values with none and with all present, and modality -> (N,) whether the model's guard set
    it aside; the encoders run once, the 2^M coalitions only through fusion and head."""
    from mmfuse.estimators.explain import explanation_baseline
    from mmfuse.evaluation.contribution import model_value_fn, shapley_values
    from mmfuse.models.multimodal import MultimodalModel

    mods = list(fitted.model.modalities)
    baseline = explanation_baseline(fitted.config, fitted.model).embeddings
    value = model_value_fn(fitted.model, enc, fitted.task, fitted.batch_size, baseline=baseline)
    phi = shapley_values(value, mods, num_samples=len(enc))
    n = len(enc)
    base = value({m: np.zeros(n, dtype=bool) for m in mods})
    full = value({m: np.ones(n, dtype=bool) for m in mods})
    mask = {m: torch.as_tensor(enc.mask[m]) for m in mods}
    if isinstance(fitted.model, MultimodalModel):
        guard = fitted.model.guard
        # value.data.mask lacks what the guard's input test set aside; its embedding test runs here
        kept = mask if guard is None else guard(value.data.inputs, value.data.mask)
    else:  # an ensemble takes its inputs whole: its forward pass says what its members' guards kept
        with torch.no_grad():
            kept = fitted.model.eval()(value.data.inputs, value.data.mask).mask
    distrusted = {m: (mask[m] & ~kept[m]).numpy() for m in mods}
    return value.outputs.numpy(), phi, base, full, distrusted


def _weights(fitted: Any, enc: Encoded, pos: int) -> dict[str, float] | None:
    from mmfuse.estimators.pipeline import take_records
    from mmfuse.evaluation.fusion_weights import fusion_weights

    keep = np.zeros(len(enc), dtype=bool)
    keep[pos] = True
    return fusion_weights(fitted.model, take_records(enc, keep))


def _refusal(rejected: list[Rejection], row: int) -> RequestError:
    reasons = [f"field {r.column!r}: {r.reason}" if r.column else r.reason for r in rejected if r.row == row]
    return RequestError(422, "; ".join(reasons) or "the record could not be prepared")


@torch.no_grad()
def search_batch(served: ServedIndex, jobs: Sequence[SearchJob], base_dir: Path) -> list[Any]:
    """The hits of every query, best first; queries of one kind are embedded together."""
    from mmfuse.estimators.retrieval_query import choose_tower

    est = served.model.estimator
    kinds = {m: est.preprocessor_.modalities[m] for m in est.model_config_.pair}
    results: list[Any] = [None] * len(jobs)
    by_tower: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        try:
            tower = choose_tower(kinds, job.kind, served.tower).tower
        except MmfuseError as err:
            results[i] = RequestError(422, str(err).replace(" (use --modality to say what the query is)", ""))
            continue
        by_tower.setdefault(tower, []).append(i)
    for tower, positions in by_tower.items():
        df = pd.DataFrame({tower: [jobs[i].query for i in positions]}, dtype=object)
        vectors, enc = est.encode_table(Table(df, base_dir, TABLE_NAME), tower, tower, "skip", True)
        for i in range(len(positions)):
            results[positions[i]] = _refusal(enc.rejected, i)
        if len(vectors) == 0:
            continue
        hits = served.index.search(vectors, max(jobs[positions[r]].k for r in enc.rows))
        for q, row in enumerate(enc.rows):
            job = jobs[positions[row]]
            results[positions[row]] = _hits(served, hits.hits(q).head(job.k))
    return results


def _hits(served: ServedIndex, frame: pd.DataFrame) -> list[dict[str, Any]]:
    media = served.kind in MEDIA_KINDS
    return [
        {"rank": int(r["rank"]), "score": float(r["score"]), "row": int(r["row"]), "row_id": int(r["row_id"]),
         "value": str(r["value"]), "kind": served.kind,
         "media_url": f"/v1/media/{served.name}/{int(r['row_id'])}" if media else None}
        for _, r in frame.iterrows()
    ]  # fmt: skip


@dataclass(frozen=True)
class RecommendJob:
    """One user's top ``k`` items."""

    user: str
    k: int


@torch.no_grad()
def recommend_batch(model: ServedModel, jobs: Sequence[RecommendJob], items: Any) -> list[Any]:
    """Each user's top items with the items' fields and media (``items``: an ``ItemTable``)."""
    est = model.estimator
    recs = est.recommend([job.user for job in jobs], max(job.k for job in jobs))
    by_user = {user: frame for user, frame in recs.groupby("user", sort=False)}
    results: list[Any] = []
    for job in jobs:
        frame = by_user.get(job.user)
        hits = [] if frame is None else [
            {"rank": int(r.rank), "item": str(r.item), "score": float(r.score), **items.describe(str(r.item))}
            for r in frame.head(job.k).itertuples()
        ]
        results.append({"model": model.name, "user": job.user, "known": job.user in est.users_.index,
                        "results": hits})
    return results
