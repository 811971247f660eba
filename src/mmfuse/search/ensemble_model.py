"""The ensemble a preset keeps: greedy selection over the candidates' validation outputs, turned
into one model (``models.ensemble.EnsembleModel``) that saves, loads and serves like any other."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse.search.ensemble import ensemble_selection

if TYPE_CHECKING:
    from mmfuse.estimators.base import MultimodalEstimator
    from mmfuse.search.halving import Prepared, Search, Trial

ROUNDS = 20


def ensemble_of(search: Search, trials: list[Trial], data: Prepared
                ) -> tuple[MultimodalEstimator, dict[str, float], dict[str, Any]] | None:
    """(an estimator holding the selected ensemble, its validation scores, its record), or None
    when selection keeps a single model. Members share ``data``'s preprocessing. The scores are
    those of the weighted mean of the members' validation outputs as each was scored (a
    combiner that learns from the validation records, cross-fitted), so they compare fairly
    with the single candidates'."""
    from mmfuse.estimators.training import calibrate

    fn = search.score_fn(trials[0].estimator)
    views = data.views

    def score(mean: np.ndarray) -> float:
        return views.combine(list(mean), fn)["selection"]

    stacks = [np.stack(t.outputs) for t in trials]
    weights, _ = ensemble_selection(stacks, score, ROUNDS)
    chosen = [(t, float(w)) for t, w in zip(trials, weights) if w > 0]
    if len(chosen) < 2:
        return None
    est = _holding(search, [t.estimator for t, _ in chosen], [w for _, w in chosen])
    if search.task == "classification" and search.est.calibrate:
        est.model_config_, est.calibration_ = calibrate(est.model_, est.model_config_, data.valid, False)
    # scored like the candidates: on their stored (for learning combiners, cross-fitted) outputs
    scores = views.combine(list(sum(w * s for w, s in zip(weights, stacks))), fn)
    record = {"members": {t.candidate.name: round(w, 4) for t, w in chosen}, "rounds": ROUNDS}
    return est, scores, record


def bag_of(search: Search, best: Trial) -> tuple[MultimodalEstimator, dict[str, Any]]:
    """(an estimator holding the equal-weight ensemble of ``best``'s models on every split, its
    record). Bagging: each member trained on another 80 % of the records, so their average
    varies less than any one of them. Its temperature stays 1: each member is calibrated on
    its own held-out records, and no records are held out from all of them."""
    trials = [best, *best.resplits]
    weights = [1.0 / len(trials)] * len(trials)
    est = _holding(search, [t.estimator for t in trials], weights)
    return est, {"members": {f"{best.candidate.name} split {i + 1}": round(w, 4) for i, w in enumerate(weights)},
                 "splits": len(trials)}


def _holding(search: Search, members: list[MultimodalEstimator], weights: list[float]) -> MultimodalEstimator:
    """A copy of the first member's estimator holding the ensemble of ``members``."""
    from mmfuse.models.builder import ENSEMBLE, ModelConfig
    from mmfuse.models.ensemble import EnsembleModel

    first = members[0].model_config_
    model = EnsembleModel([m.model_ for m in members], weights, search.task)
    config = ModelConfig(
        level=ENSEMBLE, fusion="weighted_mean", encoders=dict(first.encoders), task=first.task,
        num_outputs=first.num_outputs, dim=first.dim, members=[m.model_config_.to_dict() for m in members],
        member_weights=list(weights),
    )
    est = copy.copy(members[0])
    est.model_, est.model_config_, est.calibration_ = model, config, None
    return est
