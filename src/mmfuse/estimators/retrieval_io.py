"""The model directory of a MultimodalRetriever (same files as SPEC §4, JSON + safetensors)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mmfuse import __version__
from mmfuse._io import atomic_open, read_json, write_json
from mmfuse.data.preprocess import Preprocessor
from mmfuse.errors import MmfuseError
from mmfuse.pretrained import BACKBONES

if TYPE_CHECKING:
    from mmfuse.estimators.retriever import MultimodalRetriever

FORMAT_VERSION = 1


def weights_fingerprint(path: Path) -> str:
    """SHA-256 of model.safetensors: identifies the exact model that built an index."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_retriever(est: MultimodalRetriever, path: str | Path) -> None:
    """Writes config.json, model.safetensors, preprocess.json, metrics.json and history.csv."""
    from mmfuse.estimators.io import write_rejected
    from mmfuse.estimators.pretrained import pretrained_record
    from mmfuse.training.checkpoint import save_weights

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(out / "model.safetensors", est.model_.state_dict())
    est.fingerprint_ = weights_fingerprint(out / "model.safetensors")
    est.model_dir_ = str(out.resolve())
    config = {
        "format_version": FORMAT_VERSION,
        "mmfuse_version": __version__,
        "estimator": "MultimodalRetriever",
        "params": est.get_params(),
        "schema": est.schema_.to_dict(),
        "modalities": est.preprocessor_.modalities,
        "model": est.model_config_.to_dict(),
        "training": vars(est.train_config_),
        "preprocessing": vars(est.preprocessor_.config),
        "pretrained": pretrained_record(est.preprocessor_),
        "fingerprint": est.fingerprint_,
    }
    write_json(out / "config.json", config)
    write_json(out / "preprocess.json", est.preprocessor_.to_dict())
    a, b = est.model_config_.pair
    write_json(out / "metrics.json", {
        "task": "retrieval", "pair": [a, b], "modalities": est.preprocessor_.modalities,
        "n_train": est.n_train_, "n_valid": est.n_valid_, "train_seconds": round(est.train_seconds_, 3),
        "epochs_run": len(est.history_), "parameters": est.model_.num_parameters(),
        "metrics": est.metrics_,
        **({"note": f"metrics are those of the held-out validation pairs; the saved model was then "
                    f"refit on all {est.n_train_ + est.n_valid_} pairs for {est.refit_epochs_} epochs"}
           if getattr(est, "refit_epochs_", 0) else {}),
    })  # fmt: skip
    with atomic_open(out / "history.csv") as handle:
        pd.DataFrame(est.history_).to_csv(handle, index=False)
    if est.on_bad_record == "skip":
        write_rejected(out / "rejected.csv", est.rejected_)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)


def load_retriever(folder: Path, config: dict[str, Any]) -> MultimodalRetriever:
    """Rebuilds a MultimodalRetriever from its directory (packages of pretrained towers needed)."""
    from mmfuse.estimators.io import restore_results
    from mmfuse.estimators.pretrained import attach_extractors
    from mmfuse.estimators.retriever import MultimodalRetriever
    from mmfuse.models.retrieval import RetrievalConfig, build_retrieval_model
    from mmfuse.training.checkpoint import load_weights
    from mmfuse.training.trainer import TrainConfig

    est = MultimodalRetriever(**config["params"])
    pre = Preprocessor.from_dict(read_json(folder / "preprocess.json"))
    for m, p in pre.pretrained.items():
        BACKBONES[p.backbone].require(f"model {folder}, modality {m!r}")
    attach_extractors(pre, est)
    est.preprocessor_, est.schema_ = pre, pre.schema
    est.model_config_ = RetrievalConfig.from_dict(config["model"])
    est.train_config_ = TrainConfig(**config["training"])
    specs = {m: s for m, s in pre.input_specs().items() if m in est.model_config_.pair}
    model = build_retrieval_model(est.model_config_, specs)
    try:
        model.load_state_dict(load_weights(folder / "model.safetensors"))
    except RuntimeError as err:
        raise MmfuseError(f"{folder}/model.safetensors does not match config.json: {err}") from None
    est.model_ = model.eval()
    est.fingerprint_ = weights_fingerprint(folder / "model.safetensors")
    est.model_dir_ = str(folder.resolve())
    restore_results(est, folder)
    return est
