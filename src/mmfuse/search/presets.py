"""What each preset tries: its candidate models and how the budget is spread over them.

Every preset mixes feature-level fusion trained with modality dropout (a model that has seen
modalities go missing) with decision-level fusion (each modality predicts on its own; a
combiner joins them, so a missing or useless modality costs little), because validation on
clean records alone cannot tell which will hold up; ``search.validation`` scores them on
damaged copies too. ``fast`` and ``medium`` train on the frozen pretrained features only (their
networks are small and train in seconds); ``best`` also tries every modality from scratch and,
last, its best candidate with each pretrained network fine-tuned (``search.finetuning``):
general-purpose features are not always the right ones, and only validation can tell, but
training image and audio networks costs ten to a hundred times more on a CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mmfuse.errors import MmfuseError
from mmfuse.params import PRESETS as PRESET_NAMES
from mmfuse.params import EstimatorParams, defaults

DROPOUT = 0.3
"""Modality dropout of the feature-level candidates (hides each modality of a training sample
with this probability)."""


BEST_TIME_LIMIT = 3600.0
"""``best``'s time limit when none is given: its search, from-scratch networks and fine-tuning
took 16 to 24 minutes on 640 demo records (2 CPU cores) and grow with the data; an hour keeps a
first run bounded, and the best model finished in time is kept (``--time-limit`` changes it)."""


@dataclass(frozen=True)
class Candidate:
    """One model to try: estimator parameters that differ from the user's.

    Attributes:
        name: Shown in the leaderboard, e.g. "feature/attention md=0.3" (with " pretrained" or
            " scratch" after it when both kinds of features are tried).
        features: "default" (the encoders the parameters choose: frozen packaged networks where
            installed), "scratch" (every encoder trained from scratch) or "finetune=<modality>"
            (that modality's pretrained network trained too).
        params: Estimator parameters (level, fusion, modality_dropout, lr, dim ...).
    """

    name: str
    features: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def late(self) -> bool:
        return self.params.get("level") == "late"

    @property
    def shared_training(self) -> tuple[Any, ...]:
        """What decides the trained networks: late-level candidates that differ only in their
        combiner share one set of per-modality models."""
        params = {k: v for k, v in self.params.items() if not (self.late and k == "fusion")}
        return (self.features, tuple(sorted(params.items())))


@dataclass(frozen=True)
class Preset:
    """A preset: which candidates, and successive halving's schedule.

    Attributes:
        name: "fast", "medium" or "best".
        feature_fusions: Feature-level operators tried (each with modality dropout).
        dropouts: Modality dropout rates of the feature-level candidates.
        late_fusions: Decision-level combiners tried (over one set of per-modality models).
        scratch: Also try every candidate with encoders trained from scratch.
        rungs: Successive halving: the share of the epoch budget at each rung.
        eta: Keep the best 1/eta of the candidates after each rung but the last.
        epochs_factor: The epoch budget of the last rung, as a multiple of ``epochs``.
        optuna_trials: ``best``: trials of a hyper-parameter search around the winner.
        splits: On a small table (``halving.SMALL_TABLE``), the finalists are trained on this
            many random splits and judged by their mean score; each finalist's models on every
            split make a bag, and greedy selection over the bags chooses what is kept.
        finetune: Last, try the best candidate on pretrained features with each pretrained
            network fine-tuned in turn (``search.finetuning``).
        time_limit: Seconds the whole fit may take when the user gives no ``time_limit``
            (None: no limit).
    """

    name: str
    feature_fusions: tuple[str, ...]
    dropouts: tuple[float, ...]
    late_fusions: tuple[str, ...]
    scratch: bool
    rungs: tuple[float, ...]
    eta: int = 3
    epochs_factor: float = 1.0
    optuna_trials: int = 0
    splits: int = 1
    finetune: bool = False
    time_limit: float | None = None

    def candidates(self, modalities: int, has_pretrained: bool) -> list[Candidate]:
        """The candidates for data with ``modalities`` modalities (decision level and modality
        dropout need two), with and without pretrained features where both exist."""
        both = self.scratch and has_pretrained
        out = []
        for source, label in (("default", " pretrained"), ("scratch", " scratch"))[: 2 if both else 1]:
            label = label if both else ""
            if modalities < 2:
                out += [Candidate(f"feature/{f}{label}", source, {"level": "feature", "fusion": f})
                        for f in self.feature_fusions[:1]]
                continue
            out += [Candidate(f"feature/{f} md={p:g}{label}", source,
                              {"level": "feature", "fusion": f, "modality_dropout": p})
                    for f in self.feature_fusions for p in self.dropouts]
            out += [Candidate(f"late/{f}{label}", source, {"level": "late", "fusion": f, "modality_dropout": 0.0})
                    for f in self.late_fusions]
        return out


PRESETS = {
    "fast": Preset("fast", ("attention",), (DROPOUT,), ("confidence", "product", "mean"), scratch=False,
                   rungs=(1.0,), splits=2),
    "medium": Preset("medium", ("attention", "concat", "gated"), (DROPOUT,),
                     ("confidence", "product", "mean", "weighted", "stacking"), scratch=False,
                     rungs=(1 / 3, 1.0), splits=3),
    "best": Preset("best", ("attention", "concat", "gated", "transformer", "low_rank_tensor", "film"),
                   (0.15, DROPOUT, 0.5), ("confidence", "product", "mean", "weighted", "stacking"), scratch=True,
                   rungs=(1 / 9, 1 / 3, 1.0), epochs_factor=1.5, optuna_trials=12, splits=5, finetune=True,
                   time_limit=BEST_TIME_LIMIT),
}

AUTO_PRESET = "fast"
"""What ``preset="auto"`` (the default) runs on a plain fit. Measured against one model on the
demo data (8 datasets, `benchmarks/preset_choice.py`: .749 / .694 clean / 30 % missing against
.734 / .681) and on spoken digits with drawn and with handwritten pictures
(`benchmarks/robust_defaults.py`, 3 seeds each: at or above one model in 7 of 8 columns, the
issue's three robustness goals met where one model misses one), for 3 to 5 times one model's
training time (6.9 s against 1.4 s on the demo, 8-9 s against 2-3 s on the digits; the prepared
records and pretrained features are shared, so preprocessing costs the same). On a demo dataset
of 8,000 records: .802 / .756 against .791 / .746, 45 s against 29 s of training after 700 s of
preparing the records."""

PRESET_ENV = "MMFUSE_PRESET"
"""Set to ``none`` to make "auto" fit one model (or to another preset to run that one)."""

AUTO_DROPOUT = defaults(EstimatorParams)["modality_dropout"]
"""Any other ``modality_dropout`` describes one model: "auto" fits it."""


def preset_to_run(params: EstimatorParams, resume: bool = False) -> str | None:
    """The preset a fit with ``params`` runs (None: one model). "auto" is ``AUTO_PRESET`` for a
    plain fit (``fit`` also checks that the prepared records fit in memory: else one model,
    streamed); one model where the parameters describe it (``level``, ``fusion``,
    ``modality_dropout``, and ``finetune``: each candidate would fine-tune the network again),
    for ``--stream``, ``--resume`` and several processes, and under ``MMFUSE_PRESET=none`` (the
    environment may also name another preset for "auto")."""
    from mmfuse.training import distributed

    preset = "none" if params.preset is None else params.preset
    if preset not in PRESET_NAMES:
        raise MmfuseError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESET_NAMES)}")
    if preset != "auto":
        return None if preset == "none" else preset
    chosen = os.environ.get(PRESET_ENV, "").strip().lower() or AUTO_PRESET
    if chosen not in PRESET_NAMES or chosen == "auto":
        raise MmfuseError(f"{PRESET_ENV}={chosen!r}: choose one of: fast, medium, best, none")
    described = (params.level, params.fusion, params.modality_dropout) != (None, None, AUTO_DROPOUT)
    described = described or bool(params.finetune)
    plain = not (described or params.stream or resume or distributed.is_distributed())
    return chosen if chosen != "none" and plain else None
