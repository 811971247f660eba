"""The ``best`` preset's last step: Optuna's TPE sampler tunes the learning rate, width, weight
decay and (feature level) modality dropout of the candidate that won the halving, at the full
epoch budget, within what is left of the time limit. Optuna is an optional extra
(``mmfuse[search]``); without it the step is skipped and said so."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmfuse._progress import log
from mmfuse.search.presets import Candidate

if TYPE_CHECKING:
    from mmfuse.search.halving import Search


def tune(search: Search, trials: int) -> None:
    """Adds up to ``trials`` tuned variants of the best candidate to ``search``'s trials."""
    try:
        import optuna
    except ImportError:
        log("note: the best preset tunes the winner with Optuna, which is not installed "
            "(pip install 'mmfuse[search]'); kept the halving's result", search.est.verbose)
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    winner = search.best()
    rung, epochs = winner.rung, winner.epochs
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=search.est.seed))
    log(f"tuning {winner.candidate.name} with Optuna: up to {trials} trials", search.est.verbose)
    for i in range(trials):
        trial = study.ask()
        params = _suggest(trial, winner.candidate, search.est)
        cand = Candidate(f"{winner.candidate.name} tuned {i + 1}", winner.candidate.features,
                         {**winner.candidate.params, **params})
        done = search.train(cand, rung, epochs)
        if done is None:  # out of time: nothing later would fit either
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        study.tell(trial, done.scores["selection"])
        search.finalists.append(done)


def _suggest(trial: Any, cand: Candidate, est: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "lr": trial.suggest_float("lr", est.lr / 4, est.lr * 4, log=True),
        "dim": trial.suggest_categorical("dim", [64, 128, 256]),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    }
    if not cand.late:
        params["modality_dropout"] = trial.suggest_float("modality_dropout", 0.0, 0.5)
    return params
