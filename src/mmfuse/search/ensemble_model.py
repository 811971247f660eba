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
MIX_BAGS = True
"""On a small table, greedy selection over the finalists' bags; False keeps the top finalist's
bag alone (the rule before; ``benchmarks/preset_choice.py`` measures the two side by side)."""


def ensemble_of(search: Search, trials: list[Trial], data: Prepared
                ) -> tuple[MultimodalEstimator, dict[str, float], dict[str, Any], list[tuple[Trial, float]]] | None:
    """(an estimator holding the selected ensemble, its validation scores, its record, the chosen
    trials and their weights), or None when selection keeps a single model. Members share
    ``data``'s preprocessing. The scores are those of the weighted mean of the members'
    validation outputs as each was scored (a combiner that learns from the validation records,
    cross-fitted), so they compare fairly with the single candidates'."""
    from mmfuse.estimators.training import calibrate

    # scored like the candidates: on their stored (for learning combiners, cross-fitted) outputs
    weights, scores, _ = _selected(search, trials)
    chosen = [(t, float(w)) for t, w in zip(trials, weights) if w > 0]
    if len(chosen) < 2:
        return None
    est = _holding(search, [t.estimator for t, _ in chosen], [w for _, w in chosen])
    if search.task == "classification" and search.est.calibrate:
        est.model_config_, est.calibration_ = calibrate(est.model_, est.model_config_, data.valid, False)
    record = {"members": {t.candidate.name: round(w, 4) for t, w in chosen}, "rounds": ROUNDS}
    return est, scores, record, chosen


def bags_of(search: Search, judged: list[Trial]
            ) -> tuple[MultimodalEstimator, dict[str, float], dict[str, Any], list[tuple[Trial, float]]]:
    """Greedy selection over the finalists judged on several splits, each taken as the bag of its
    models on every split (bagging: each member trained on another 80 % of the records, so their
    average varies less than any one of them): (an estimator holding the ensemble, its scores,
    its record, the chosen finalists and their weights).

    A mixture is scored like a single finalist, by the mean over the splits of the selection
    score of the members' weighted outputs on that split's validation records, so its first
    round is the best finalist and a mixture is kept only when it scores higher. Choosing the
    top mean of many noisy means favours a lucky finalist (the winner's curse); the average of
    several good ones leans on it less. Only finalists prepared alike (the same features and
    splits) can be mixed, so selection runs within each such group and the best-scoring group's
    ensemble is kept. Its temperature stays 1: each member is calibrated on its own held-out
    records, and no records are held out from all of them."""
    groups: dict[tuple[Any, ...], list[Trial]] = {}
    for t in judged if MIX_BAGS else [max(judged, key=lambda t: t.selection)]:
        key = (t.candidate.features, *(s.valid.rows.tobytes() for s in (t, *t.resplits)))
        groups.setdefault(key, []).append(t)
    weights, scores, trials = max((_selected(search, g) for g in groups.values()), key=lambda f: f[1]["selection"])
    chosen = [(t, float(w)) for t, w in zip(trials, weights) if w > 0]
    splits = 1 + len(trials[0].resplits)
    models = [(s.estimator, w / splits) for t, w in chosen for s in (t, *t.resplits)]
    est = _holding(search, [m for m, _ in models], [w for _, w in models])
    record = {"members": {t.candidate.name: round(w, 4) for t, w in chosen}, "splits": splits}
    if len(chosen) > 1:
        record["rounds"] = ROUNDS
    return est, scores, record, chosen


def _selected(search: Search, trials: list[Trial]) -> tuple[np.ndarray, dict[str, float], list[Trial]]:
    """Greedy selection over ``trials`` (prepared alike), each scored on every split it was
    trained on: (weights, the mixture's scores averaged over the splits, ``trials``)."""
    views = search.prepared[trials[0].candidate.features].views  # the layout of every split's views
    fn = search.score_fn(trials[0].estimator)
    targets = [s.valid.targets for s in (trials[0], *trials[0].resplits)]
    bounds = np.cumsum([0, *(len(y) for y in targets)])

    def scores(mean: np.ndarray) -> dict[str, float]:
        per_split = [views.combine(list(mean[:, a:b]), fn, y) for a, b, y in zip(bounds, bounds[1:], targets)]
        return {k: float(np.mean([p[k] for p in per_split])) for k in per_split[0]}

    stacks = [np.concatenate([np.stack(s.outputs) for s in (t, *t.resplits)], axis=1) for t in trials]
    weights, _ = ensemble_selection(stacks, lambda mean: scores(mean)["selection"], ROUNDS)
    return weights, scores(sum(w * s for w, s in zip(weights, stacks))), trials


def _holding(search: Search, members: list[MultimodalEstimator], weights: list[float]) -> MultimodalEstimator:
    """A copy of the first member's estimator holding the ensemble of ``members``."""
    from mmfuse.models.builder import ENSEMBLE, ModelConfig
    from mmfuse.models.ensemble import EnsembleModel

    first = members[0].model_config_
    model = EnsembleModel(_unshared([m.model_ for m in members]), weights, search.task)
    config = ModelConfig(
        level=ENSEMBLE, fusion="weighted_mean", encoders=dict(first.encoders), task=first.task,
        num_outputs=first.num_outputs, dim=first.dim, members=[m.model_config_.to_dict() for m in members],
        member_weights=list(weights),
    )
    est = copy.copy(members[0])
    est.model_, est.model_config_, est.calibration_ = model, config, None
    return est


def _unshared(models: list[Any]) -> list[Any]:
    """``models``, each one that shares a tensor with an earlier one copied (decision-level
    candidates that differ only in their combiner share their per-modality networks; a saved
    model stores every tensor once per member)."""
    seen: set[int] = set()
    out = []
    for model in models:
        if any(t.data_ptr() in seen for t in model.state_dict().values() if t.numel()):
            model = copy.deepcopy(model)
        seen.update(t.data_ptr() for t in model.state_dict().values() if t.numel())
        out.append(model)
    return out
