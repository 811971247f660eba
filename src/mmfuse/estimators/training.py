"""Glue between an estimator's parameters and the core: builder + task + trainer."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmfuse._progress import log
from mmfuse.data.preprocess import Encoded, Preprocessor
from mmfuse.data.schema import parse_pairs
from mmfuse.data.tensors import TensorData, take
from mmfuse.evaluation.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC, primary_metric
from mmfuse.models.builder import ModelConfig, build_model, resolve_encoders, resolve_fusion
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.tasks import create_task
from mmfuse.tasks.classification import balanced_class_weights
from mmfuse.training.trained import TrainedModel
from mmfuse.training.trainer import TrainConfig, Trainer

if TYPE_CHECKING:
    from mmfuse.params import EstimatorParams


def model_config(params: EstimatorParams, pre: Preprocessor) -> ModelConfig:
    """The architecture an estimator's parameters describe for this data."""
    level, fusion = resolve_fusion(params.level, params.fusion)
    overrides = parse_pairs(params.encoders, "--encoder")
    networks = {m: p.backbone for m, p in pre.pretrained.items()}  # decided by the preprocessing
    encoders = resolve_encoders(pre.modalities, level, overrides, networks)
    assert pre.target is not None
    return ModelConfig(
        level=level,
        fusion=fusion,
        encoders=encoders,
        task=pre.target.task,
        num_outputs=pre.target.num_outputs,
        dim=params.dim,
    )


def train_config(params: EstimatorParams) -> TrainConfig:
    return TrainConfig(
        epochs=params.epochs,
        batch_size=params.batch_size,
        lr=params.lr,
        weight_decay=params.weight_decay,
        patience=params.patience,
        seed=params.seed,
        device=params.device,
        augment=params.augment,
        modality_dropout=params.modality_dropout,
    )


def train_model(
    params: EstimatorParams,
    pre: Preprocessor,
    train: Encoded,
    valid: Encoded,
    out_dir: str | Path | None,
    resume: bool,
    deadline: float | None = None,
) -> TrainedModel:
    """Builds the model and trains it (a decision-level combiner is fitted on ``valid``);
    ``deadline``: see ``Trainer``."""
    mcfg, tcfg = model_config(params, pre), train_config(params)
    dropped = tcfg.modality_dropout > 0 and len(train.mask) > 1  # a lone modality is never dropped
    hid = dropped or not all(v.all() for v in train.mask.values())
    several = hid and len(train.mask) > 1
    # a decision-level model needs no training with missing modalities to fall back on the
    # others: its combiner joins whichever opinions are present
    late = mcfg.level == "late" and len(train.mask) > 1
    guarded = params.guard and (several or late) and mcfg.level != "early"
    mcfg = dataclasses.replace(mcfg, guard=guarded, guard_inputs=guarded,
                               auxiliary_heads=several and mcfg.level == "feature")
    torch.manual_seed(tcfg.seed)
    specs = pre.input_specs()
    model = build_model(mcfg, specs)
    weights = None
    if mcfg.task == "classification":
        assert train.targets is not None
        counts = np.bincount(train.targets.astype(int), minlength=mcfg.num_outputs)
        if counts.max() > 1.5 * max(counts.min(), 1):  # imbalanced: weight the loss
            weights = balanced_class_weights(train.targets, mcfg.num_outputs)
    task = create_task(mcfg.task, mcfg.num_outputs, weights)
    name = PRIMARY_METRIC[mcfg.task]
    metric = (name, lambda y, p: primary_metric(mcfg.task, _decode(pre, y), _decode(pre, p)))
    checkpoint = Path(out_dir) / "checkpoint" if out_dir is not None else None
    if params.verbose:
        log(
            f"training {mcfg.level}-level {mcfg.fusion} model "
            f"({model.num_parameters():,} parameters) on {len(train)} records, "
            f"validating on {len(valid)}"
        )
    trainer = Trainer(
        model, task, specs, tcfg, metric, checkpoint, params.verbose, HIGHER_IS_BETTER[name],
        deadline=deadline,
    )
    history = trainer.fit(TensorData.from_encoded(train), TensorData.from_encoded(valid), resume)
    means = embedding_means(model, train, tcfg.batch_size)
    mcfg = dataclasses.replace(mcfg, embedding_means=means, trained_with_missing=hid)
    model.cpu().eval()
    if model.guard is not None:
        fit_guard(model, train, valid, tcfg.batch_size, params.verbose)
    if hasattr(model.fusion, "fit_combiner"):
        fit_combiner(model, valid)
    calibration = None
    if mcfg.task == "classification" and params.calibrate:
        mcfg, calibration = calibrate(model, mcfg, valid, params.verbose)
    return TrainedModel(model, mcfg, tcfg, history, trainer.kept_epoch, calibration)


MIN_CALIBRATION_RECORDS = 20
"""Fewer validation records than this leave the temperature at 1 (one number from a handful of
records would be noise)."""


@torch.no_grad()
def calibrate(model: MultimodalModel, mcfg: ModelConfig, valid: Encoded, verbose: bool
              ) -> tuple[ModelConfig, dict[str, float] | None]:
    """Fits the temperature on the validation records' logits (``evaluation.calibration``),
    sets it on ``model``; the config that records it, and the log loss (what the temperature
    minimises) and calibration error before and after it, on those same records."""
    from mmfuse.evaluation.calibration import expected_calibration_error, fit_temperature

    if len(valid) < MIN_CALIBRATION_RECORDS or valid.targets is None:
        return mcfg, None
    model.temperature.fill_(1.0)
    data = TensorData.from_encoded(valid)
    logits = torch.cat([model(b.inputs, b.mask).require_logits().float()
                        for b in (data.batch(i, torch.device("cpu")) for i in torch.arange(len(data)).split(256))])
    y = valid.targets.astype(int)
    t = fit_temperature(logits.numpy(), y)
    model.temperature.fill_(t)
    target = torch.from_numpy(y)
    report = {"temperature": t}
    for when, scaled in (("before", logits), ("after", logits / t)):
        report[f"valid_ece_{when}"] = expected_calibration_error(y, scaled.softmax(-1).numpy())
        report[f"valid_log_loss_{when}"] = float(torch.nn.functional.cross_entropy(scaled, target))
    log(f"calibration: temperature {t:.3f}; validation log loss {report['valid_log_loss_before']:.4f} -> "
        f"{report['valid_log_loss_after']:.4f}, ECE {report['valid_ece_before']:.4f} -> "
        f"{report['valid_ece_after']:.4f}", verbose)
    return dataclasses.replace(mcfg, temperature=t), report


def fit_combiner(model: MultimodalModel, valid: Encoded) -> None:
    """Fits a decision-level combiner (weighted, stacking, ...) on held-out predictions.

    The per-modality models never saw these records, so the combiner learns from
    out-of-sample predictions (no leakage).
    """
    model.fusion.fit_combiner(*held_out(model, valid))


HeldOut = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]
"""Per-modality outputs, presence mask and targets of records the model did not train on."""


def held_out(model: MultimodalModel, valid: Encoded) -> HeldOut:
    """What a decision-level combiner learns from: ``per_modality_outputs`` on ``valid`` and its
    targets."""
    assert valid.targets is not None
    outputs, mask = per_modality_outputs(model, valid)
    return outputs, mask, torch.from_numpy(valid.targets.astype(np.float32))


def with_combiner(model: MultimodalModel, fusion: str, task: str, num_outputs: int,
                  records: HeldOut | None) -> MultimodalModel:
    """The late-level ``model``'s per-modality networks joined by another decision-level
    combiner; one that learns (weighted, stacking, confidence) is fitted on ``records``."""
    from mmfuse.fusion import create_fusion

    combiner = create_fusion(fusion, {m: num_outputs for m in model.modalities}, task=task)
    if hasattr(combiner, "fit_combiner"):
        if records is None:
            raise ValueError(f"the {fusion!r} combiner learns from held-out records; none given")
        combiner.fit_combiner(*records)
    return MultimodalModel(dict(model.encoders), combiner, None, dict(model.modality_heads), "late", model.guard)


@torch.no_grad()
def per_modality_outputs(
    model: MultimodalModel, enc: Encoded, batch_size: int = 256
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Late level: each modality's own outputs (N, C) and the presence mask, in record order."""
    model.eval()
    data = TensorData.from_encoded(enc)
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in model.modalities}
    for index in torch.arange(len(data)).split(batch_size):
        batch = data.batch(index, torch.device("cpu"))
        out = model(batch.inputs, batch.mask)
        assert out.per_modality is not None
        for m, value in out.per_modality.items():
            chunks[m].append(value.float())
    return {m: torch.cat(v) for m, v in chunks.items()}, dict(data.mask)


@torch.no_grad()
def embedding_means(
    model: MultimodalModel, enc: Encoded, batch_size: int = 256
) -> dict[str, list[float]]:
    """Each modality's mean encoder embedding over the records of ``enc`` where it is present,
    rounded to float32 (the shortest decimal that reads back as the same float32).

    Runs in eval mode on the device the model is on (after training: the training device),
    summing batch by batch on the CPU; a modality present in no record gets no entry. An explanation
    puts this mean in place of a hidden modality for a model that never saw one missing.
    """
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    data = TensorData.from_encoded(enc)
    sums = {m: torch.zeros(int(model.encoders[m].output_dim), dtype=torch.float64) for m in model.modalities}
    for index in torch.arange(len(data)).split(max(batch_size, 1)):
        batch = data.batch(index, device)
        for m, z in model.encode(batch.inputs, batch.mask).items():  # missing rows are zero
            sums[m] += z.float().sum(0).cpu().double()  # float64 on the CPU: not every device has it
    counts = {m: int(v.sum()) for m, v in data.mask.items()}
    return {m: [float(str(x)) for x in (s.cpu() / counts[m]).numpy().astype(np.float32)]
            for m, s in sums.items() if counts[m] > 0}  # fmt: skip


GUARD_SAMPLE = 20_000
"""At most this many training (and validation) records give the guard its statistics."""


@torch.no_grad()
def fit_guard(model: MultimodalModel, train: Encoded, valid: Encoded, batch_size: int, verbose: bool) -> None:
    """Fits ``model.guard`` (``models.guard``) on the embeddings, and the feature vectors it
    tests, of up to ``GUARD_SAMPLE`` training and validation records (a seeded sample), each
    modality where it is present."""
    guard = model.guard
    assert guard is not None
    from mmfuse.evaluation._forward import embeddings_of

    def embedded(enc: Encoded) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        rows = np.arange(len(enc))
        if len(enc) > GUARD_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(len(enc), GUARD_SAMPLE, replace=False))
        data = embeddings_of(model, enc, max(batch_size, 1), rows, guarded=False)
        raw = TensorData.from_encoded(enc).inputs
        inputs = {m: take(raw[m], torch.as_tensor(rows[data.mask[m].numpy()])) for m in guard.inputs}
        return {m: z[data.mask[m]] for m, z in data.inputs.items()}, inputs

    (z, x), (zv, xv) = embedded(train), embedded(valid)
    thresholds = guard.fit(z, zv, x, xv)
    fitted = ", ".join(f"{m} {t:.3g}" for m, t in thresholds.items() if np.isfinite(t))
    inputs = ", ".join(f"{m} {t:.3g}" for m, t in guard.input_thresholds().items() if np.isfinite(t))
    log(f"modality guard: thresholds {fitted or 'none (too few records)'}"
        + (f"; on feature vectors {inputs}" if inputs else ""), verbose)


def _decode(pre: Preprocessor, y: np.ndarray) -> np.ndarray:
    assert pre.target is not None
    return y if pre.target.task == "classification" else pre.target.decode(y)
