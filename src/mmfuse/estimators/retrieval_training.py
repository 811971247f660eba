"""Glue between MultimodalRetriever and the core: dual-encoder builder, trainer, embedding."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.data.schema import parse_pairs
from mmfuse.data.tensors import TensorData
from mmfuse.errors import MmfuseError
from mmfuse.models.builder import resolve_encoders
from mmfuse.models.retrieval import RetrievalConfig, RetrievalModel, build_retrieval_model
from mmfuse.tasks.retrieval import RetrievalTask
from mmfuse.training.trained import TrainedModel
from mmfuse.training.trainer import MetricFn, TrainConfig, Trainer

if TYPE_CHECKING:
    from mmfuse.estimators.retriever import MultimodalRetriever

METRIC = "recall_mean"
"""Validation metric: the mean of R@1, R@5 and R@10 over both directions (R@1 alone jumps
from epoch to epoch on small validation sets, which misleads early stopping)."""


PROJECTIONS = ("auto", "linear", "mlp")
"""How a pretrained tower reaches the shared space: "linear" (one linear map of the network's
features), "mlp" (LayerNorm, linear, GELU, then the linear map) or "auto" (both are trained when
the pretrained networks are frozen, and validation keeps the better; ties go to "linear").
Measured on frozen features (benchmarks/retrieval_baseline.py): the linear map generalises
better on spoken sentences (R@1 0.94 against 0.88), the MLP on image captions (0.82 against 0.78
caption->image); neither wins everywhere, so the validation split decides."""


def retrieval_config(est: MultimodalRetriever, pre: Preprocessor, projection: str = "mlp") -> RetrievalConfig:
    pair = est.pair_columns()
    kinds = {m: pre.modalities[m] for m in pair}
    networks = {m: p.backbone for m, p in pre.pretrained.items() if m in kinds}
    encoders = resolve_encoders(kinds, "feature", parse_pairs(est.encoders, "--encoder"), networks)
    linear = projection == "linear"
    hparams = {m: {"adapter": "none"} for m in pair if linear and m in pre.pretrained}
    return RetrievalConfig(pair, encoders, est.dim, est.embed_dim, est.temperature, hparams)


def projection_candidates(est: MultimodalRetriever, pre: Preprocessor) -> list[str]:
    """The projections to train: ``est.projection``, or for "auto" both where a tower has a
    frozen pretrained network (training on cached features is cheap) and "mlp" otherwise (a
    from-scratch or fine-tuned tower has its own layers; the choice barely matters there)."""
    if est.projection != "auto":
        return [est.projection]
    towers = [pre.pretrained.get(m) for m in est.pair_columns()]
    pretrained = [p for p in towers if p is not None]
    return ["linear", "mlp"] if pretrained and all(p.frozen for p in pretrained) else ["mlp"]


def check_projection(projection: str) -> None:
    """MmfuseError for a projection not in ``PROJECTIONS`` (checked before any data is read)."""
    if projection not in PROJECTIONS:
        raise MmfuseError(f"unknown projection {projection!r}; choose one of: {', '.join(PROJECTIONS)}")


def projection_scores(histories: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Projection -> its best validation ``METRIC`` at any epoch."""
    return {p: max(h[f"valid_{METRIC}"] for h in history) for p, history in histories.items()}


def best_projection(histories: dict[str, list[dict[str, float]]]) -> str:
    """The projection with the best validation ``METRIC`` at any epoch; ties: the first listed."""
    best = projection_scores(histories)
    return max(best, key=lambda p: (best[p], -list(best).index(p)))


def mean_recall(pair: tuple[str, str]) -> MetricFn:
    """The validation metric ``METRIC`` as ``(item ids (N, 2), embeddings (N, 2, D)) -> float``
    (``RetrievalTask.predict``: each pair's side A and side B embeddings)."""
    from mmfuse.retrieval.metrics import bidirectional_metrics

    def metric(y: np.ndarray, embeddings: np.ndarray) -> float:
        za, zb = embeddings[:, 0], embeddings[:, 1]
        both = bidirectional_metrics(za, zb, y[:, 0], y[:, 1], pair)
        return float(np.mean([d[k] for d in both.values() for k in ("R@1", "R@5", "R@10")]))

    return metric


def train_retrieval(
    est: MultimodalRetriever,
    pre: Preprocessor,
    train: Encoded,
    valid: Encoded,
    out_dir: str | Path | None,
    resume: bool,
    refit_epochs: int | None = None,
    projection: str = "mlp",
    checkpoint_name: str = "checkpoint",
) -> TrainedModel:
    """Builds the dual encoder and trains it with symmetric InfoNCE.

    ``refit_epochs``: train exactly that many epochs and keep the last weights (a refit on all
    pairs once validation chose the epoch count); ``valid`` then only reports progress, and as
    its pairs are among those trained on, its numbers are labelled "seen", not "valid".
    ``projection``: "linear" or "mlp" (see ``PROJECTIONS``).
    """
    cfg = retrieval_config(est, pre, projection)
    # Only projections of cached features train: gradient clipping (there for deep and recurrent
    # towers) just slows them down (R@1 +0.01 to +0.03 without it, benchmarks/retrieval_baseline.py).
    frozen = all(m in pre.pretrained and pre.pretrained[m].frozen for m in cfg.pair)
    tcfg = TrainConfig(
        epochs=refit_epochs or est.epochs, batch_size=est.batch_size, lr=est.lr,
        weight_decay=est.weight_decay, patience=0 if refit_epochs else est.patience, seed=est.seed,
        device=est.device, augment=est.augment, keep_last=bool(refit_epochs),
        grad_clip=0.0 if frozen else TrainConfig.grad_clip,
    )  # fmt: skip
    torch.manual_seed(tcfg.seed)
    specs = {m: s for m, s in pre.input_specs().items() if m in cfg.pair}
    model = build_retrieval_model(cfg, specs)
    if est.verbose and refit_epochs:
        log(f"refitting on all {len(train)} pairs (training and validation) for {refit_epochs} "
            f"epochs, the count chosen on validation; seen_{METRIC} is measured on the "
            f"{len(valid)} validation pairs, which the refit trains on: a training score, not a "
            "held-out one")
    elif est.verbose:
        log(f"training a {cfg.pair[0]} <-> {cfg.pair[1]} dual encoder ({projection} projection, "
            f"{model.num_parameters():,} parameters) on {len(train)} pairs, validating on {len(valid)}")
    checkpoint = Path(out_dir) / checkpoint_name if out_dir is not None else None
    trainer = Trainer(
        model, RetrievalTask(cfg.pair), specs, tcfg, (METRIC, mean_recall(cfg.pair)), checkpoint,
        est.verbose, valid_label="seen" if refit_epochs else "valid",
    )
    data = [TensorData.from_encoded(e.select(list(cfg.pair))) for e in (train, valid)]
    history = trainer.fit(data[0], data[1], resume)
    return TrainedModel(model.cpu().eval(), cfg, tcfg, history, trainer.kept_epoch)


def refit_epochs(history: list[dict[str, float]], n_valid: int) -> int:
    """Epochs for the refit on all pairs: the longest training whose validation ``METRIC`` is
    within one standard error of the best (sqrt(p (1 - p) / n) for a share p of n pairs).

    On small validation sets the best epoch is mostly noise and tends to be early, while more
    training on every pair keeps helping new data; any epoch statistically as good as the best
    is a fair choice, and the last one uses the data most.
    """
    scores = [h[f"valid_{METRIC}"] for h in history]
    top = max(scores)
    margin = math.sqrt(max(top * (1 - top), 0.0) / max(n_valid, 1))
    return max(int(h["epoch"]) for h, score in zip(history, scores) if score >= top - margin)


@torch.no_grad()
def embed_encoded(model: RetrievalModel, tower: str, enc: Encoded, batch_size: int = 512) -> np.ndarray:
    """(N, embed_dim) unit vectors of one tower's preprocessed inputs, in record order."""
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(enc.inputs[tower]))
    chunks = [model.embed(tower, part) for part in x.split(batch_size)]
    if not chunks:
        return np.zeros((0, model.output_dim), dtype=np.float32)
    return torch.cat(chunks).float().numpy()
