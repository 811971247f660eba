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
    from mmfuse.models.builder import ENSEMBLE, ModelConfig
    from mmfuse.models.ensemble import EnsembleModel

    fn = search.score_fn(trials[0].estimator)
    views = data.views

    def score(mean: np.ndarray) -> float:
        return views.combine(list(mean), fn)["selection"]

    stacks = [np.stack(t.outputs) for t in trials]
    weights, _ = ensemble_selection(stacks, score, ROUNDS)
    chosen = [(t, float(w)) for t, w in zip(trials, weights) if w > 0]
    if len(chosen) < 2:
        return None
    members = [t.estimator for t, _ in chosen]
    first = members[0]
    model = EnsembleModel([m.model_ for m in members], [w for _, w in chosen], search.task)
    config = ModelConfig(
        level=ENSEMBLE, fusion="weighted_mean", encoders=dict(first.model_config_.encoders),
        task=first.model_config_.task, num_outputs=first.model_config_.num_outputs, dim=first.model_config_.dim,
        members=[m.model_config_.to_dict() for m in members], member_weights=[w for _, w in chosen],
    )
    est = copy.copy(first)
    est.model_, est.model_config_, est.calibration_ = model, config, None
    if search.task == "classification" and search.est.calibrate:
        est.model_config_, est.calibration_ = calibrate(model, config, data.valid, False)
    # scored like the candidates: on their stored (for learning combiners, cross-fitted) outputs
    scores = views.combine(list(sum(w * s for w, s in zip(weights, stacks))), fn)
    record = {"members": {t.candidate.name: round(w, 4) for t, w in chosen}, "rounds": ROUNDS}
    return est, scores, record
