"""``fit(preset=...)``: a preset's candidates trained on shared prepared records, chosen by
validation with successive halving (Jamieson and Talwalkar 2016) within a time limit.

Rung by rung, every surviving candidate is trained with that rung's share of the epoch budget and
scored on the validation records (``search.validation``: clean and damaged copies); the best
``1/eta`` go on to the next rung. Decision-level candidates that differ only in their combiner
share one set of per-modality networks, trained once per rung. With a time limit, a candidate
whose expected time no longer fits is skipped, and training stops before an epoch that would
end too late; the best model finished in time is kept.

On a small table (up to ``SMALL_TABLE`` records, no validation file given) one validation split
of a few hundred records ranks candidates by noise, so the finalists are trained on further
random splits of the same records and judged by their mean score; each finalist's models on
every split make a bag (their average), and greedy selection over the bags keeps a mixture of
several when it scores higher than the best one alone. On larger tables, greedy ensemble
selection over the finished candidates' validation predictions keeps a weighted ensemble when
it scores better than the best single model.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.data.readers import Table
from mmfuse.search.presets import PRESETS, Candidate, Preset
from mmfuse.search.record import leaderboard_frame, search_record, shown
from mmfuse.search.validation import Views, check_metric, metric_fn

if TYPE_CHECKING:
    from mmfuse.estimators.base import DataLike, MultimodalEstimator


SMALL_TABLE = 5000
"""Up to this many records, a preset's finalists are judged on several validation splits."""


@dataclass
class Prepared:
    """One way of preparing the records (pretrained features or from scratch), shared by every
    candidate that uses it."""

    pre: Preprocessor
    train: Encoded
    valid: Encoded
    views: Views


@dataclass
class Trial:
    """One candidate trained at one rung."""

    candidate: Candidate
    rung: int
    epochs: int
    estimator: MultimodalEstimator
    seconds: float
    scores: dict[str, float]
    outputs: list[np.ndarray] = field(repr=False)
    valid: Encoded = field(repr=False)
    resplits: list[Trial] = field(default_factory=list, repr=False)

    @property
    def selection(self) -> float:
        """The selection score, averaged over the other splits where it was trained on them."""
        return float(np.mean([self.scores["selection"], *(t.scores["selection"] for t in self.resplits)]))

    def stopped_early(self) -> bool:
        """Whether early stopping ended it (so a larger epoch budget would train it the same)."""
        kept, patience = self.estimator.kept_epoch_, self.estimator.patience
        ran = len(self.estimator.history_)
        return bool(patience and kept is not None and ran < self.epochs and ran - kept >= patience)


@dataclass
class Search:
    """The state of one preset search (see the module docstring)."""

    est: MultimodalEstimator
    preset: Preset
    task: str
    metric: str
    started: float
    deadline: float | None
    prepared: dict[str, Prepared] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    shared: dict[tuple[Any, ...], MultimodalEstimator] = field(default_factory=dict)
    finalists: list[Trial] = field(default_factory=list)
    final_epochs: int = 0

    # --------------------------------------------------------------- the rungs
    def run(self, candidates: list[Candidate]) -> None:
        alive = candidates
        rungs = self.preset.rungs
        full = max(1, round(self.est.epochs * self.preset.epochs_factor))  # --epochs 1 trains 1
        for rung, share in enumerate(rungs):
            epochs = min(full, max(2, round(full * share)))  # an early rung: 2 at least, to compare
            self.shared.clear()
            log(f"rung {rung + 1}/{len(rungs)}: {len(alive)} candidate(s), {epochs} epochs each", self.est.verbose)
            last = rung == len(rungs) - 1
            self.final_epochs = epochs
            done = [t for i, c in enumerate(alive)
                    if (t := self.advance(c, rung, epochs, self.share(alive[i:], 1.0 if last else 0.5))) is not None]
            if not done or last:
                self.finalists = done
                return
            done.sort(key=lambda t: -t.scores["selection"])
            alive = [t.candidate for t in done[: max(1, math.ceil(len(alive) / self.preset.eta))]]
            if len(alive) == 1 and rung + 1 < len(rungs):  # one left: give it the full budget now
                rungs = (*rungs[: rung + 1], rungs[-1])

    def advance(self, cand: Candidate, rung: int, epochs: int, deadline: float | None) -> Trial | None:
        """``cand`` at this rung: its lower rung's trial when early stopping ended that one (the
        same seed and records would train it the same again), else a new training."""
        before = [t for t in self.trials if t.candidate == cand]
        if before and before[-1].stopped_early():
            return before[-1]
        return self.train(cand, rung, epochs, deadline)

    def resplit(self, splits: int) -> None:
        """Trains every finalist again on ``splits - 1`` other random splits of the same records
        (stratified, 20 % held out each) and averages its selection score over all of them: on a
        small table one validation split is too noisy to choose by (a candidate a few records
        luckier there is not a better model)."""
        for r in range(1, splits):  # one split at a time: at most one extra copy of the records
            data = {f: split_again(p, r, self.est.seed, self.task) for f, p in self.prepared.items()
                    if any(t.candidate.features == f for t in self.finalists)}
            for trial in self.finalists:
                if self.deadline is not None and time.perf_counter() > self.deadline:
                    return
                # the last rung's budget: a finalist that stopped early at a lower rung may not here
                again = self.train(trial.candidate, trial.rung, max(trial.epochs, self.final_epochs), self.deadline,
                                   (r, data[trial.candidate.features]))
                if again is not None:
                    trial.resplits.append(again)
                    self.trials.remove(again)  # reported with its finalist, not as a trial of its own

    def share(self, pending: list[Candidate], part: float) -> float | None:
        """The deadline of the next training: an equal share of ``part`` of the time left among
        the trainings still ``pending`` in this rung (late candidates that share their networks
        count once), so that one slow candidate cannot use up the budget of the others."""
        if self.deadline is None:
            return None
        trainings = len({c.shared_training for c in pending if not (c.late and c.shared_training in self.shared)})
        now = time.perf_counter()
        return now + max(self.deadline - now, 0.0) * part / max(trainings, 1)

    def train(self, cand: Candidate, rung: int, epochs: int, deadline: float | None = None,
              split: tuple[int, Prepared] | None = None) -> Trial | None:
        """Trains and scores ``cand`` (no epoch starting that would end after ``deadline``, or
        the search's), or records why it was skipped (the time limit); ``split``: (its number,
        the records) when it is trained on another split than the first."""
        expected = self.expected_seconds(cand, rung, epochs)
        if self.deadline is not None and self.trials and time.perf_counter() + expected > self.deadline:
            self.skipped.append({"name": cand.name, "rung": rung + 1, "expected_seconds": round(expected, 1),
                                 "why": f"one epoch (about {expected:.1f}s) would end past the time limit"})
            log(f"  skipped {cand.name}: {self.skipped[-1]['why']}", self.est.verbose)
            return None
        r, data = split or (0, self.prepared[cand.features])
        began = time.perf_counter()
        if cand.late:
            est, outputs = self.late_candidate(cand, data, epochs, deadline, r)
        else:
            est = self.fitted(cand, data, epochs, deadline)
            outputs = [est.fitted_model.outputs(v) for v in data.views.all()]
        seconds = time.perf_counter() - began
        scores = data.views.combine(outputs, self.score_fn(est))
        trial = Trial(cand, rung, epochs, est, seconds, scores, outputs, data.valid)
        self.trials.append(trial)
        parts = "  ".join(f"{k}={shown(self.metric, v)}" for k, v in scores.items())
        where = f", split {r + 1}" if r else ""
        log(f"  {cand.name:<34} {parts}  ({seconds:.1f}s, {len(est.history_)} epochs{where})", self.est.verbose)
        return trial

    def expected_seconds(self, cand: Candidate, rung: int, epochs: int) -> float:
        """What the shortest useful training of ``cand`` costs (one epoch and its scoring): its
        own time per epoch at a lower rung, else the median per-epoch time of this rung so far
        (not the first alone: the first training of a process also pays for its imports);
        nothing for a late candidate whose networks are trained already. (The deadline of each
        training cuts it short after that, so a longer forecast would skip what still fits.)"""
        if cand.late and cand.shared_training in self.shared:
            return 0.0
        before = [t for t in self.trials if t.candidate == cand] or [t for t in self.trials if t.rung == rung]
        return float(np.median([t.seconds / max(len(t.estimator.history_), 1) for t in before])) if before else 0.0

    # ------------------------------------------------------------- training
    def fitted(self, cand: Candidate, data: Prepared, epochs: int, deadline: float | None) -> MultimodalEstimator:
        params = {**self.est.get_params(), **cand.params, "epochs": epochs, "preset": None, "time_limit": None,
                  "verbose": False}
        ends = [d for d in (deadline, self.deadline) if d is not None]
        return type(self.est)(**params).fit_encoded(data.pre, data.train, data.valid, deadline=min(ends, default=None))

    def late_candidate(self, cand: Candidate, data: Prepared, epochs: int, deadline: float | None, split: int = 0
                       ) -> tuple[MultimodalEstimator, list[np.ndarray]]:
        """The shared per-modality networks with ``cand``'s combiner; a combiner that learns is
        scored cross-fitted (fitted on one half of the validation records, scored on the other)."""
        from mmfuse.estimators.training import calibrate, held_out, with_combiner

        key = (split, *cand.shared_training)
        if key not in self.shared:
            base = self.fitted(Candidate(cand.name, cand.features, {**cand.params, "fusion": "mean"}), data, epochs,
                               deadline)
            self.shared[key] = base
        base = self.shared[key]
        n_out = base.model_config_.num_outputs
        model = with_combiner(base.model_, cand.params["fusion"], self.task, n_out, held_out(base.model_, data.valid))
        est = copy.copy(base)
        est.model_config_ = dataclasses.replace(base.model_config_, fusion=cand.params["fusion"], temperature=1.0)
        est.model_ = model
        if self.task == "classification" and self.est.calibrate:
            est.model_config_, est.calibration_ = calibrate(model, est.model_config_, data.valid, False)
        if not hasattr(model.fusion, "fit_combiner"):
            return est, [est.fitted_model.outputs(v) for v in data.views.all()]
        return est, self.crossfitted(est, base, cand.params["fusion"], data)

    def crossfitted(self, est: MultimodalEstimator, base: MultimodalEstimator, fusion: str, data: Prepared
                    ) -> list[np.ndarray]:
        from mmfuse.estimators.training import held_out, with_combiner
        from mmfuse.models.fitted import FittedModel

        valid = data.valid
        order = np.random.default_rng(self.est.seed).permutation(len(valid))
        halves = [np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])]
        outputs = [np.zeros_like(o) for o in (est.fitted_model.outputs(v) for v in data.views.all())]
        n_out = base.model_config_.num_outputs
        for fit_on, scored in (halves, halves[::-1]):
            if not len(fit_on) or not len(scored):
                continue
            part = with_combiner(base.model_, fusion, self.task, n_out, held_out(base.model_, _take(valid, fit_on)))
            part.temperature.copy_(est.model_.temperature)
            fitted = FittedModel(part, est.model_config_, data.pre, est.batch_size)
            for i, view in enumerate(data.views.all()):
                outputs[i][scored] = fitted.outputs(_take(view, scored))
        return outputs

    def score_fn(self, est: MultimodalEstimator) -> Any:
        return metric_fn(self.task, self.metric, est.fitted_model.decode)

    # ------------------------------------------------------------ the choice
    def best(self) -> Trial:
        """The trial with the best selection score; once the finalists were judged on several
        splits, the best finalist (a single split's score is not comparable with a mean)."""
        judged = [t for t in self.finalists if t.resplits]
        return max(judged or self.finished(), key=lambda t: t.selection)

    def finished(self) -> list[Trial]:
        """Each candidate's best-scoring trial (usually its highest rung; under a time limit a
        later rung may have had fewer epochs), or its finalist judged on several splits."""
        best: dict[str, Trial] = {}
        for t in self.trials:
            if t.candidate.name not in best or t.selection > best[t.candidate.name].selection:
                best[t.candidate.name] = t
        best.update({t.candidate.name: t for t in self.finalists if t.resplits})
        return list(best.values())


def fit_preset(est: MultimodalEstimator, table: Table, target: str, valid: DataLike | None,
               out_dir: str | Path | None, started: float, name: str) -> MultimodalEstimator:
    """Runs the search of preset ``name`` for ``est`` and makes ``est`` the kept model (see the
    module docstring); writes the model directory when ``out_dir`` is given."""
    preset = PRESETS[name]
    limit = est.time_limit if est.time_limit is not None else preset.time_limit
    deadline = None if limit is None else started + limit
    pre, train, valid_enc = est.prepared(table, target, valid)
    assert pre.target is not None  # a classifier or regressor always has its target
    task = pre.target.task
    search = Search(est, preset, task, check_metric(task, est.metric), started, deadline)
    search.prepared["default"] = Prepared(pre, train, valid_enc, Views.build(valid_enc, est.seed))
    candidates = preset.candidates(len(pre.modalities), bool(pre.pretrained))
    if any(c.features == "scratch" for c in candidates):
        log("preparing the records for the candidates without pretrained features", est.verbose)
        scratch = type(est)(**{**est.get_params(), "pretrained": False, "verbose": False})
        s_pre, s_train, s_valid = scratch.prepared(table, target, valid)
        search.prepared["scratch"] = Prepared(s_pre, s_train, s_valid, Views.build(s_valid, est.seed))
    plural = "s" if len(candidates) != 1 else ""
    log(f"preset {preset.name}: {len(candidates)} candidate{plural}, chosen by validation "
        f"{search.metric} (clean and damaged records)" + (f", within {limit:g}s" if limit is not None else "")
        + (" (the preset's default; --time-limit changes it)" if est.time_limit is None and limit else ""),
        est.verbose)
    search.run(candidates)
    if preset.optuna_trials:
        from mmfuse.search.tuning import tune

        tune(search, preset.optuna_trials)
    splits = preset.splits if valid is None and len(train) + len(valid_enc) <= SMALL_TABLE else 1
    if splits > 1:
        more = f"{splits - 1} more split" + ("s" if splits > 2 else "")
        log(f"a small table: the {len(search.finalists)} finalist(s) trained on {more}, scores "
            "averaged", est.verbose)
        search.resplit(splits)
    if preset.finetune:
        from mmfuse.search.finetuning import try_finetuned

        try_finetuned(search, table, target, valid, splits)
    _adopt(est, search, train.rejected + valid_enc.rejected)
    if out_dir is not None:
        est.save(out_dir)
    return est


def _adopt(est: MultimodalEstimator, search: Search, rejected: list[Any]) -> None:
    """Makes ``est`` the kept model: the best trial; on a small table, the greedy ensemble of
    the finalists' bags (``ensemble_model.bags_of``: a single bag when mixing does not score
    higher); else the ensemble that greedy selection finds, when it beats the best trial."""
    from mmfuse.search.ensemble_model import bags_of, ensemble_of

    best = search.best()
    kept, ensemble, scores, chosen = best.estimator, None, None, [(best, 1.0)]
    if est.ensemble and best.resplits:
        judged = [t for t in search.finalists if len(t.resplits) == len(best.resplits)]
        kept, scores, ensemble, chosen = bags_of(search, judged)
    elif est.ensemble:
        members = [t for t in search.finished() if t.candidate.features == best.candidate.features]
        found = ensemble_of(search, members, search.prepared[best.candidate.features]) if len(members) > 1 else None
        if found is not None:
            scores = found[1]
            if scores["selection"] > best.selection + 1e-9:
                kept, ensemble, chosen = found[0], found[2], found[3]
    data = search.prepared[chosen[0][0].candidate.features]
    for name in ("model_", "model_config_", "train_config_", "history_", "kept_epoch_", "calibration_",
                 "n_train_", "n_valid_"):
        setattr(est, name, getattr(kept, name))
    est.preprocessor_, est.schema_, est.rejected_ = data.pre, data.pre.schema, rejected
    est.metrics_ = _validation_metrics(chosen, search.task)
    est.train_seconds_ = time.perf_counter() - search.started
    est.search_ = search_record(search, best, ensemble, scores)
    est.leaderboard_ = leaderboard_frame(est.search_)
    members = list(ensemble["members"]) if ensemble else [best.candidate.name]
    several = len(members) > 1
    what = f"an ensemble of {len(members)} ({', '.join(members)})" if several else members[0]
    if ensemble and ensemble.get("splits", 1) > 1:
        each = "each " if several else ""
        what += f", {each}the mean of its models on {ensemble['splits']} splits"
    log(f"kept {what} (validation {search.metric} {est.metrics_.get(search.metric, float('nan')):.4f}; "
        f"{est.train_seconds_:.0f}s in all)", est.verbose)


def _validation_metrics(chosen: list[tuple[Trial, float]], task: str) -> dict[str, float]:
    """The kept model's metrics on the validation records: from the chosen trials' weighted
    outputs on the clean records (for a combiner that learns from them, cross-fitted); with
    other splits, each metric's mean over the splits, each model scored on the records it did
    not train on."""
    from mmfuse.evaluation.metrics import task_metrics

    decode = chosen[0][0].estimator.fitted_model.decode
    per_split = []
    for r in range(1 + len(chosen[0][0].resplits)):
        splits = [((t, *t.resplits)[r], w) for t, w in chosen]
        outputs = sum(w * s.outputs[0] for s, w in splits)
        per_split.append(task_metrics(task, decode(splits[0][0].valid.targets), decode(outputs)))
    return {k: float(np.mean([m[k] for m in per_split])) for k in per_split[0]}


def split_again(data: Prepared, r: int, seed: int, task: str) -> Prepared:
    """The training and validation records of ``data`` pooled and split again (20 % held out,
    stratified where possible), with the seed ``seed + r``. The preprocessing stays the one
    fitted on the first split's training records."""
    from sklearn.model_selection import train_test_split

    from mmfuse.estimators.pipeline import stratifiable, take_records

    pooled = _concat(data.train, data.valid)
    labels = pooled.targets if task == "classification" else None
    index = np.arange(len(pooled))
    _, held = train_test_split(index, test_size=0.2, random_state=seed + r,
                               stratify=labels if stratifiable(labels, 0.2) else None)
    hold = np.isin(index, held)
    valid = take_records(pooled, hold)
    return Prepared(data.pre, take_records(pooled, ~hold), valid, Views.build(valid, seed))


def _concat(a: Encoded, b: Encoded) -> Encoded:
    return Encoded({m: np.concatenate([a.inputs[m], b.inputs[m]]) for m in a.inputs},
                   {m: np.concatenate([a.mask[m], b.mask[m]]) for m in a.mask},
                   np.concatenate([a.rows, b.rows]),
                   None if a.targets is None or b.targets is None else np.concatenate([a.targets, b.targets]), [])


def _take(enc: Encoded, rows: np.ndarray) -> Encoded:
    from mmfuse.estimators.pipeline import take_records

    keep = np.zeros(len(enc), dtype=bool)
    keep[rows] = True
    return take_records(enc, keep)

