"""The model directory: config.json, model.safetensors, preprocess.json, metrics.json,
history.csv and (when records were skipped) rejected.csv. JSON and safetensors only:
loading a model never unpickles or runs code from the directory.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmfuse import __version__
from mmfuse._io import atomic_open, write_json
from mmfuse.data.preprocess import Preprocessor, Rejection
from mmfuse.errors import MmfuseError
from mmfuse.estimators.model_files import (
    CONFIG, CONFIG_SECTIONS, FORMAT_VERSION, HISTORY, METRICS, PREPROCESS, PREPROCESS_SECTIONS, WEIGHTS,
    check_format_version, check_model_dir, construct, damaged, read_history, read_model_json,
    reading, require_keys,
)  # fmt: skip
from mmfuse.pretrained import BACKBONES


@dataclass(frozen=True)
class ModelRecord:
    """What a model directory holds, as one value: ``save_model`` writes it.

    Attributes:
        estimator: The estimator's class name (how ``load`` rebuilds it).
        params: Its parameters (``config.json["params"]``).
        model: The trained network.
        model_config: Its architecture (``ModelConfig`` or ``RetrievalConfig``).
        train_config: The training settings.
        preprocessor: The fitted preprocessing.
        history: One record per epoch.
        metrics: The ``metrics.json`` document.
        rejected: The skipped records for ``rejected.csv``; None writes no such file.
    """

    estimator: str
    params: dict[str, Any]
    model: Any
    model_config: Any
    train_config: Any
    preprocessor: Preprocessor
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    rejected: list[Rejection] | None = None


def model_record(est: Any, metrics: dict[str, Any] | None = None) -> ModelRecord:
    """The record of a fitted estimator (``metrics``: the metrics.json document, by default
    ``metrics_document(est)``)."""
    return ModelRecord(
        type(est).__name__, est.get_params(), est.model_, est.model_config_, est.train_config_,
        est.preprocessor_, list(est.history_),
        metrics if metrics is not None else metrics_document(est),
        est.rejected_ if est.on_bad_record == "skip" else None,
    )  # fmt: skip


def save_model(record: ModelRecord, path: str | Path) -> str:
    """Writes every file of the model directory (atomically, file by file); returns the
    weights' fingerprint (recorded in config.json; an index names the model it was built with)."""
    from mmfuse.estimators.pretrained import pretrained_record
    from mmfuse.training.checkpoint import save_weights

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(out / "model.safetensors", record.model.state_dict())
    fingerprint = weights_fingerprint(out / "model.safetensors")
    pre = record.preprocessor
    config = {
        "format_version": FORMAT_VERSION,
        "mmfuse_version": __version__,
        "estimator": record.estimator,
        "params": record.params,
        "schema": pre.schema.to_dict(),
        "modalities": pre.modalities,
        "model": record.model_config.to_dict(),
        "training": vars(record.train_config),
        "preprocessing": vars(pre.config),
        "pretrained": pretrained_record(pre),
        "fingerprint": fingerprint,
    }
    write_json(out / "config.json", config)
    write_json(out / "preprocess.json", pre.to_dict())
    write_json(out / "metrics.json", record.metrics)
    write_history(out, record.history)
    if record.rejected is not None:
        write_rejected(out / "rejected.csv", record.rejected)
    for checkpoint in out.glob("checkpoint*"):  # "checkpoint-<projection>" for each candidate
        shutil.rmtree(checkpoint, ignore_errors=True)
    return fingerprint


def weights_fingerprint(path: Path) -> str:
    """SHA-256 of model.safetensors: identifies the exact weights."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def metrics_document(est: Any) -> dict[str, Any]:
    """The metrics.json content of SPEC §4."""
    doc = {
        "task": est.model_config_.task,
        "level": est.model_config_.level,
        "fusion": est.model_config_.fusion,
        "modalities": est.preprocessor_.modalities,
        "n_train": est.n_train_,
        "n_valid": est.n_valid_,
        "n_rejected": len({r.row for r in est.rejected_}),
        "train_seconds": round(est.train_seconds_, 3),
        "epochs_run": len(est.history_),
        "kept_epoch": getattr(est, "kept_epoch_", None),
        "parameters": est.model_.num_parameters(),
        "metrics": est.metrics_,
    }
    calibration = getattr(est, "calibration_", None)
    if calibration:
        doc["calibration"] = calibration
    search = getattr(est, "search_", None)
    if search:
        doc["search"] = search
    if hasattr(getattr(est.model_, "fusion", None), "fit_combiner"):
        doc["note"] = (
            "the decision-level combiner was fitted on the validation records, so these "
            "validation metrics are optimistic; run `mmfuse evaluate` on held-out data"
        )
    return doc


def write_history(out: Path, history: list[dict[str, Any]]) -> None:
    """Writes history.csv: one row per epoch."""
    with atomic_open(out / HISTORY) as handle:
        pd.DataFrame(history).to_csv(handle, index=False)


def write_rejected(path: Path, rejected: list[Rejection]) -> None:
    """Writes rejected.csv: one line per bad value (file, row, column, reason)."""
    frame = pd.DataFrame(
        [{"file": r.file, "row": r.row, "column": r.column, "reason": r.reason} for r in rejected],
        columns=["file", "row", "column", "reason"],
    )
    with atomic_open(path) as handle:
        frame.to_csv(handle, index=False)


def load(path: str | Path, **overrides: Any) -> Any:
    """Loads a model directory written by ``fit --out`` or ``estimator.save``.

    ``overrides`` set run-time parameters before anything is built (``num_threads``,
    ``device``, ``batch_size``, ``cache_dir``, ``on_bad_record`` ...); a ``cache_dir`` given
    here is the caller's own (writable) cache, while the one recorded in config.json is only
    read.

    The directory is verified before it is used: every file present, a known format version,
    weights whose SHA-256 matches config.json, and JSON sections that match what they rebuild.

    Raises:
        MmfuseError: Naming the file and what is wrong, for any of the checks above.
    """
    from mmfuse.training.checkpoint import load_weights

    folder = Path(path)
    check_model_dir(folder)
    config_path = folder / CONFIG
    config = read_model_json(folder, CONFIG)
    check_format_version(config_path, config)
    if "fingerprint" not in config:
        raise MmfuseError(
            f"{config_path} records no fingerprint (the SHA-256 of {WEIGHTS}), so the weights "
            "cannot be verified; fit the model again (models saved by this mmfuse record one)"
        )
    require_keys(config_path, config, CONFIG_SECTIONS)
    fingerprint = config["fingerprint"]
    if not isinstance(fingerprint, str) or not re.fullmatch("[0-9a-f]{64}", fingerprint):
        raise damaged(config_path, f"fingerprint {fingerprint!r} is not the SHA-256 of {WEIGHTS}")
    weights = load_weights(folder / WEIGHTS, sha256=fingerprint)  # verified before anything is built
    if config["estimator"] == "MultimodalRecommender":
        from mmfuse.estimators.recommender_io import rebuild_recommender

        est = rebuild_recommender(folder, config, overrides)
    else:
        est = _rebuild(folder, config, overrides)
    from mmfuse.encoders.pretrained import with_identity_statistics

    try:
        est.model_.load_state_dict(with_identity_statistics(est.model_, weights))
    except RuntimeError as err:
        what = f"its tensors do not match the model in {CONFIG} ({err})"
        raise damaged(folder / WEIGHTS, what) from None
    est.model_.eval()
    est.fingerprint_ = fingerprint
    est.model_dir_ = str(folder.resolve())
    restore_results(est, folder)
    return est


def load_fitted(path: str | Path, **overrides: Any) -> Any:
    """The ``FittedModel`` of a classifier or regressor directory (what serving needs), verified
    as ``load`` verifies it."""
    est = load(path, **overrides)
    if est.task_ == "retrieval":
        raise MmfuseError(f"{path} holds a retrieval model; it has no fitted classifier or regressor")
    return est.fitted_model


def _rebuild(folder: Path, config: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """The estimator, preprocessor and untrained model described by config.json and
    preprocess.json, each section checked."""
    from mmfuse.estimators.classifier import MultimodalClassifier
    from mmfuse.estimators.pretrained import feature_source
    from mmfuse.estimators.regressor import MultimodalRegressor
    from mmfuse.estimators.retriever import MultimodalRetriever
    from mmfuse.models.builder import ModelConfig, build_model
    from mmfuse.models.retrieval import RetrievalConfig, build_retrieval_model
    from mmfuse.training.trainer import TrainConfig

    kinds: dict[str, tuple[Any, Any, Any]] = {
        "MultimodalClassifier": (MultimodalClassifier, ModelConfig, build_model),
        "MultimodalRegressor": (MultimodalRegressor, ModelConfig, build_model),
        "MultimodalRetriever": (MultimodalRetriever, RetrievalConfig, build_retrieval_model),
    }
    config_path = folder / CONFIG
    if config["estimator"] not in kinds:
        what = f"unknown estimator {config['estimator']!r} (known: {', '.join(kinds)})"
        raise damaged(config_path, what)
    cls, config_cls, build = kinds[config["estimator"]]
    est = construct(cls, config["params"], config_path, "params")
    foreign = sorted(set(overrides) - set(est.get_params()))
    if foreign:
        raise MmfuseError(f"{', '.join(foreign)} does not apply to this {config['estimator']} model")
    est.set_params(**overrides)
    pre_path = folder / PREPROCESS
    with reading(pre_path):
        pre = Preprocessor.from_dict(read_model_json(folder, PREPROCESS, PREPROCESS_SECTIONS))
    with reading(config_path, "pretrained"):
        _check_pretrained(folder, pre, config.get("pretrained", {}))
    recorded_cache = None if "cache_dir" in overrides else folder  # read-only unless given now
    features = feature_source(pre.pretrained, pre.modalities, est.device, est.use_cache,
                              est.cache_dir, model_dir=recorded_cache)
    pre = pre.with_features(features)
    est.preprocessor_, est.schema_ = pre, pre.schema
    est.model_config_ = construct(
        config_cls, config["model"], config_path, "model", config_cls.from_dict
    )
    est.train_config_ = construct(TrainConfig, config["training"], config_path, "training")
    with reading(config_path, "model"):
        try:
            est.model_ = build(est.model_config_, pre.input_specs())
        except RuntimeError as err:  # e.g. a negative width
            what = f"section 'model' describes no buildable model ({err})"
            raise damaged(config_path, what) from None
    return est


def _check_pretrained(folder: Path, pre: Preprocessor, recorded: dict[str, Any]) -> None:
    """Each pretrained network is installed and gives the features the model was trained on."""
    for m, p in pre.pretrained.items():
        info = BACKBONES[p.backbone]
        info.require(f"model {folder}, modality {m!r}")  # names the package to install
        revision = recorded.get(m, {}).get("revision", 1)
        if revision != info.revision or p.dim != info.dim:
            raise MmfuseError(
                f"model {folder}, modality {m!r}: it was trained on {p.dim}-d {p.backbone} "
                f"features (revision {revision}); this mmfuse computes {info.dim}-d ones "
                f"(revision {info.revision}: {info.summary}). Fit the model again."
            )


def restore_results(est: Any, folder: Path) -> None:
    """Validation metrics, sizes, train time and history from metrics.json and history.csv."""
    path = folder / METRICS
    metrics = read_model_json(folder, METRICS)
    with reading(path, "metrics"):
        est.metrics_ = dict(metrics.get("metrics", {}))
        est.n_train_, est.n_valid_ = int(metrics.get("n_train", 0)), int(metrics.get("n_valid", 0))
        est.train_seconds_ = float(metrics.get("train_seconds", 0.0))
        est.kept_epoch_ = metrics.get("kept_epoch")
        est.calibration_ = metrics.get("calibration")
        if "search" in metrics:  # a preset's leaderboard
            from mmfuse.search.record import leaderboard_frame

            est.search_ = metrics["search"]
            est.leaderboard_ = leaderboard_frame(est.search_)
        if "refit_epochs" in metrics:
            est.refit_epochs_ = int(metrics["refit_epochs"])
        if "projection" in metrics:  # retrieval: which projection validation chose
            est.projection_ = metrics["projection"]["chosen"]
            est.projection_scores_ = metrics["projection"]["valid_recall_mean"]
    est.history_ = read_history(folder)
    est.rejected_ = []
