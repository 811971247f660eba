"""The ``best`` preset's fine-tuned candidates: the winner with one pretrained network trained too.

Frozen general-purpose features are not always the right ones; training the network itself (at
a lower learning rate, ``finetune``) can find what they blur. On the demo (512 training records,
2 CPU cores) one epoch fine-tuning MiniLM took 7 s and one fine-tuning EfficientNet-Lite0 67 s,
against well under a second on cached features, so after the rest of the search:

- the best candidate on pretrained features is tried again with each modality's network
  fine-tuned in turn, the kinds cheapest to fine-tune on a CPU first (``ORDER``);
- these trainings together may take at most as long as the search took before them (``best``
  at most doubles), and never past the time limit; each gets an equal share of what is left,
  and one cut short within its first epoch is dropped as unfinished;
- on a small table a fine-tuned candidate is trained on every split the finalists were (the
  same records each time), so its mean score is compared with theirs; one not trained on every
  split in time is dropped, and one whose gain over its base is within a standard error of the
  splits' noise is shown but not kept (it is far larger and slower than its base).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from mmfuse._progress import log
from mmfuse.search.presets import Candidate
from mmfuse.search.validation import Views

if TYPE_CHECKING:
    from mmfuse.data.readers import Table
    from mmfuse.estimators.base import DataLike
    from mmfuse.search.halving import Search, Trial

ORDER = ("text", "tabular", "audio", "image", "video")
"""Modality kinds from the cheapest to fine-tune on a CPU to the dearest (a transformer over 128
tokens before a convolutional network over 224 x 224 pixels, once per frame for video)."""


def try_finetuned(search: Search, table: Table, target: str, valid: DataLike | None, splits: int) -> None:
    """Adds the fine-tuned variants of the best pretrained-feature candidate to ``search`` (its
    finalists, judged on ``splits`` splits), or lists in ``search.skipped`` why one was not."""
    base = _base(search, splits)
    pre = search.prepared["default"].pre
    if not pre.pretrained or search.est.finetune:  # the user's own choice stands
        return
    if base is None:
        rung = max((t.rung for t in search.trials), default=0) + 1
        why = "no candidate on frozen pretrained features among the finalists to start from"
        search.skipped += [{"name": f"finetune={m}", "rung": rung, "why": why, "trained": False}
                           for m in pre.pretrained]
        log(f"  no fine-tuning: {why}", search.est.verbose)
        return
    now = time.perf_counter()
    end = now + (now - search.started)
    if search.deadline is not None:
        end = min(end, search.deadline)
    names = sorted(pre.pretrained, key=lambda m: ORDER.index(pre.modalities[m]) if pre.modalities[m] in ORDER
                   else len(ORDER))
    log(f"fine-tuning the pretrained networks of {base.candidate.name} in turn ({', '.join(names)}), within "
        f"{max(end - now, 0):.0f}s", search.est.verbose)
    for m in names:
        cand = Candidate(f"{base.candidate.name} finetune={m}", f"finetune={m}",
                         {**base.candidate.params, "finetune": m})
        why = _tried(search, cand, base, table, target, valid, splits, end)
        if why:
            trained = any(t.candidate == cand for t in search.trials)  # shown, not chosen from
            search.skipped.append({"name": cand.name, "rung": base.rung + 1, "why": why, "trained": trained})
            log(f"  dropped {cand.name}: {why}", search.est.verbose)


def _base(search: Search, splits: int) -> Trial | None:
    """The best trial on frozen pretrained features (among those judged on every split, when
    there were several)."""
    trials = [t for t in search.finished() if t.candidate.features == "default"
              and (splits == 1 or len(t.resplits) == splits - 1)]
    return max(trials, key=lambda t: t.selection, default=None)


def _tried(search: Search, cand: Candidate, base: Trial, table: Table, target: str, valid: DataLike | None,
           splits: int, end: float) -> str:
    """Trains ``cand`` on every split within ``end``; what went wrong ("" when it is a finalist)."""
    from mmfuse.search.halving import Prepared, split_again

    if time.perf_counter() >= end:
        return "no time left"
    est = type(search.est)(**{**search.est.get_params(), "finetune": cand.params["finetune"], "verbose": False})
    pre, train, valid_enc = est.prepared(table, target, valid)
    first = search.prepared["default"]
    if not (np.array_equal(train.rows, first.train.rows) and np.array_equal(valid_enc.rows, first.valid.rows)):
        return "its records differ from the other candidates' (a record its network cannot read)"
    data = Prepared(pre, train, valid_enc, Views.build(valid_enc, search.est.seed))
    search.prepared[cand.features] = data
    done: list[Trial] = []
    for r in range(splits):
        now = time.perf_counter()
        deadline = now + max(end - now, 0.0) / (splits - r)
        split = (r, data if r == 0 else split_again(data, r, search.est.seed, search.task))
        trial = search.train(cand, base.rung, search.final_epochs, deadline, split)
        if trial is None:
            break
        done.append(trial)
        if _cut_short(trial):
            break
    for t in done[1:]:
        search.trials.remove(t)  # reported with the first split's trial
    short = bool(done) and _cut_short(done[-1])
    if len(done) < splits or short:
        if done:
            search.trials.remove(done[0])
        del search.prepared[cand.features]
        return "its first epoch did not end in its share of the time" if short else "no time left"
    done[0].resplits.extend(done[1:])
    gain, error = _gain(done[0], base)
    if gain <= error:
        return (f"{gain:+.4f} (standard error {error:.4f}) over {base.candidate.name}: not worth a network "
                f"trained for it" if splits > 1 else f"{gain:+.4f} over {base.candidate.name}")
    search.finalists.append(done[0])
    return ""


def _cut_short(trial: Trial) -> bool:
    """Whether the time limit stopped ``trial`` within its first epoch."""
    return trial.estimator.history_[0].get("epoch_fraction", 1.0) < 1.0


def _gain(tuned: Trial, base: Trial) -> tuple[float, float]:
    """The mean selection score ``tuned`` gains over ``base`` on the same splits, and the standard
    error of that mean (0 on one split): a fine-tuned model is far larger and slower, so it is
    kept only where it wins by more than the splits' noise."""
    gains = [a.scores["selection"] - b.scores["selection"]
             for a, b in zip((tuned, *tuned.resplits), (base, *base.resplits))]
    error = float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else 0.0
    return float(np.mean(gains)), error
