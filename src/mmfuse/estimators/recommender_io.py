"""A recommender's model directory: the files of every model (config.json, model.safetensors,
preprocess.json, metrics.json, history.csv), plus ``catalogue.safetensors`` (the training
graph, the items' prepared content and the users' prepared attributes) and ``ids.json``.

``preprocess.json`` holds the two tables' preprocessing (``{"items": ..., "users": ...}``).
``catalogue.safetensors`` is verified against its SHA-256 in config.json, like the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmfuse import __version__
from mmfuse._io import write_json
from mmfuse.data.preprocess import Preprocessor
from mmfuse.data.tensors import TensorData
from mmfuse.errors import MmfuseError
from mmfuse.estimators.model_files import FORMAT_VERSION, construct, damaged, read_model_json, reading
from mmfuse.estimators.pipeline import Pipeline
from mmfuse.recommend.graph import Neighbours
from mmfuse.recommend.prepared import Prepared
from mmfuse.recommend.tables import IdMap

CATALOGUE, IDS = "catalogue.safetensors", "ids.json"


def save_recommender(est: Any, out: Path) -> str:
    """Writes every file; returns the weights' fingerprint."""
    from mmfuse.estimators.io import weights_fingerprint, write_history, write_rejected
    from mmfuse.estimators.pretrained import pretrained_record
    from mmfuse.training.checkpoint import save_weights

    out.mkdir(parents=True, exist_ok=True)
    params = {k: None if isinstance(v, pd.DataFrame) else v for k, v in est.get_params().items()}
    save_weights(out / "model.safetensors", est.model_.state_dict())
    save_weights(out / CATALOGUE, _catalogue_tensors(est.data_))
    pipelines = {"items": est.content_pipeline_, "users": est.attribute_pipeline_}
    write_json(out / IDS, {"items": est.items_.ids, "users": est.users_.ids})
    write_json(out / "preprocess.json",
               {k: None if p is None else p.preprocessor.to_dict() for k, p in pipelines.items()})
    fingerprint = weights_fingerprint(out / "model.safetensors")
    write_json(out / "config.json", {
        "format_version": FORMAT_VERSION, "mmfuse_version": __version__,
        "estimator": type(est).__name__, "params": params,
        "model": est.model_config_.to_dict(), "training": est.train_config_.to_dict(),
        "pretrained": {k: pretrained_record(p.preprocessor) for k, p in pipelines.items() if p is not None},
        "fingerprint": fingerprint, "catalogue_fingerprint": weights_fingerprint(out / CATALOGUE),
        "tables": {"items": getattr(est, "item_table_path_", None)},
    })
    write_json(out / "metrics.json", {
        "task": "recommendation", "n_users": len(est.users_), "n_items": len(est.items_),
        "n_train": est.n_train_, "n_valid": est.n_valid_, "train_seconds": round(est.train_seconds_, 3),
        "epochs_run": len(est.history_), "kept_epoch": est.kept_epoch_,
        "parameters": est.model_.num_parameters(), "metrics": est.metrics_,
    })
    write_history(out, est.history_)
    if est.rejected_:  # rows left out in any mode (e.g. social links to unknown users)
        write_rejected(out / "rejected.csv", est.rejected_)
    return fingerprint


def rebuild_recommender(folder: Path, config: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """The estimator, its pipelines, graph and catalogue, and the untrained model."""
    from mmfuse.estimators.pretrained import feature_source
    from mmfuse.estimators.recommender import MultimodalRecommender
    from mmfuse.recommend.model import RecommenderConfig, build_recommender
    from mmfuse.recommend.training import RecTrainConfig
    from mmfuse.training.checkpoint import load_weights

    config_path = folder / "config.json"
    for name in (CATALOGUE, IDS):
        if not (folder / name).is_file():
            raise MmfuseError(f"{folder} is not a complete recommendation model directory: {name} is "
                              "missing; fit the model again, or restore the directory from a backup")
    est = construct(MultimodalRecommender, config["params"], config_path, "params")
    foreign = sorted(set(overrides) - set(est.get_params()))
    if foreign:
        raise MmfuseError(f"{', '.join(foreign)} does not apply to this recommendation model")
    est.set_params(**overrides)
    stored = read_model_json(folder, "preprocess.json", ("items", "users"))
    pipelines = {}
    for key in ("items", "users"):
        if stored[key] is None:
            pipelines[key] = None
            continue
        with reading(folder / "preprocess.json", key):
            pre = Preprocessor.from_dict(stored[key])
        recorded_cache = None if "cache_dir" in overrides else folder
        features = feature_source(pre.pretrained, pre.modalities, est.device, est.use_cache,
                                  est.cache_dir, model_dir=recorded_cache)
        pipelines[key] = Pipeline.around(pre.with_features(features), est)
    est.content_pipeline_, est.attribute_pipeline_ = pipelines["items"], pipelines["users"]
    tables = config.get("tables") or {}
    est.item_table_path_ = tables.get("items") if isinstance(tables.get("items"), str) else None
    ids = read_model_json(folder, IDS, ("items", "users"))
    with reading(folder / IDS):
        est.items_, est.users_ = IdMap([str(i) for i in ids["items"]]), IdMap([str(u) for u in ids["users"]])
    est.model_config_ = construct(RecommenderConfig, config["model"], config_path, "model", RecommenderConfig.from_dict)
    est.train_config_ = construct(RecTrainConfig, config["training"], config_path, "training")
    fingerprint = config.get("catalogue_fingerprint")
    if not isinstance(fingerprint, str):
        raise damaged(config_path, "records no catalogue_fingerprint (the SHA-256 of catalogue.safetensors)")
    tensors = load_weights(folder / CATALOGUE, sha256=fingerprint)
    with reading(folder / CATALOGUE):
        est.data_ = _prepared(tensors, len(est.users_), len(est.items_))
    specs = [None if p is None else p.preprocessor.input_specs() for p in (pipelines["items"], pipelines["users"])]
    with reading(config_path, "model"):
        est.model_ = build_recommender(est.model_config_, *specs)
    return est


def _catalogue_tensors(data: Prepared) -> dict[str, torch.Tensor]:
    out = {
        "history.indptr": torch.from_numpy(data.history.indptr), "history.indices": torch.from_numpy(data.history.indices),
        "known": torch.from_numpy(data.known), "popularity": torch.from_numpy(data.popularity.astype(np.int64)),
    }
    if data.friends is not None:
        out["friends.indptr"] = torch.from_numpy(data.friends.indptr)
        out["friends.indices"] = torch.from_numpy(data.friends.indices)
    for prefix, part in (("content", data.content), ("attributes", data.attributes)):
        if part is not None:
            out.update({f"{prefix}.inputs.{m}": x for m, x in part.inputs.items()})
            out.update({f"{prefix}.mask.{m}": v for m, v in part.mask.items()})
    return out


def _prepared(tensors: dict[str, torch.Tensor], num_users: int, num_items: int) -> Prepared:
    def table(prefix: str) -> TensorData | None:
        inputs = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"{prefix}.inputs.")}
        if not inputs:
            return None
        return TensorData(inputs, {m: tensors[f"{prefix}.mask.{m}"] for m in inputs})

    def graph(name: str) -> Neighbours | None:
        if f"{name}.indptr" not in tensors:
            return None
        return Neighbours(tensors[f"{name}.indptr"].numpy(), tensors[f"{name}.indices"].numpy())

    history = graph("history")
    known = tensors["known"].numpy()
    if history is None or history.num_rows != num_users or len(known) != num_items:
        raise ValueError("its graph does not match ids.json")
    return Prepared(history, graph("friends"), table("content"), table("attributes"), known,
                    tensors["popularity"].numpy())
