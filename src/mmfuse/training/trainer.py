"""The trainer: AdamW, validation every epoch, early stopping, best-weights restore.

Read it top to bottom: ``fit`` runs epochs; each epoch shuffles with a generator seeded by
(seed, epoch), augments, steps with gradient clipping, then validates. The best weights
(lowest validation loss) are restored at the end. With a checkpoint folder, every epoch ends
with an atomic checkpoint, so ``fit(..., resume=True)`` continues after an interruption and
gives the same result as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmfuse._progress import is_terminal, log, track
from mmfuse.data.augment import AUGMENT_LEVELS, augment_batch
from mmfuse.data.tensors import TensorData
from mmfuse.errors import MmfuseError
from mmfuse.models.multimodal import ModelOutput
from mmfuse.models.statistics import fit_input_statistics
from mmfuse.tasks.base import Task
from mmfuse.training import distributed
from mmfuse.training.checkpoint import data_fingerprint, load_checkpoint, save_checkpoint
from mmfuse.training.device import resolve_device
from mmfuse.types import InputSpec

MetricFn = Callable[[np.ndarray, np.ndarray], float]
"""(targets, predictions) -> validation metric shown in the progress and history."""


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (stored in config.json).

    Attributes:
        epochs: Maximum number of epochs.
        batch_size: Records per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: Stop after this many epochs without a better validation score (the metric,
            ties broken by the loss; the loss alone without a metric); 0: never stop early.
            With modality dropout and several modalities the score is the mean of the metric
            and of the metric with each modality hidden in turn (``valid_<metric>_hidden``), so
            that training goes on until the model also does well with a modality missing.
        grad_clip: Gradient norm clip (0: off).
        seed: Seed for initialisation, shuffling, dropout and augmentation.
        device: "auto", "cpu" or "cuda".
        augment: "none", "light" or "strong".
        modality_dropout: Probability of hiding each present modality of a training sample.
        backbone_lr_scale: Learning-rate factor for fine-tuned pretrained networks (parameters
            under a ``backbone`` submodule), so they move less than the new layers.
        keep_last: Keep the last epoch's weights rather than the best validation epoch's (to
            refit on all data once the number of epochs was chosen).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 6
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    augment: str = "light"
    modality_dropout: float = 0.0
    backbone_lr_scale: float = 0.05
    keep_last: bool = False

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if self.epochs < 1 or self.batch_size < 1:
            raise MmfuseError("epochs and batch size must be at least 1")
        if not all(0 <= v < float("inf") for v in (self.lr, self.weight_decay, self.patience, self.grad_clip)):
            raise MmfuseError(
                f"invalid training settings: lr={self.lr}, weight_decay={self.weight_decay}, "
                f"patience={self.patience}, grad_clip={self.grad_clip}; none may be negative, infinite or NaN"
            )
        if self.augment not in AUGMENT_LEVELS:
            raise MmfuseError(f"unknown augment {self.augment!r}; choose one of: {', '.join(AUGMENT_LEVELS)}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise MmfuseError(f"modality dropout must be in [0, 1), got {self.modality_dropout}")


def check_seed(seed: object) -> None:
    """A seed is an integer in [0, 2**32) (what NumPy and scikit-learn accept)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise MmfuseError(f"seed must be an integer from 0 to {2**32 - 1}, got {seed!r}")


class Trainer:
    """Trains a MultimodalModel for a task.

    Args:
        model: The model (its ``forward(inputs, mask)`` returns a ModelOutput).
        task: The task: its ``loss`` on training batches, its ``eval_loss`` and ``predict`` on
            the validation records' joined output (see ``Task``).
        specs: Modality -> InputSpec (for augmentation).
        config: Training settings.
        metric: Validation metric function and its name, e.g. ("accuracy", fn). When given,
            the best epoch is the one with the best metric (ties: the lower validation loss),
            so a model is never kept at a degenerate epoch just because its loss was lowest;
            without it, the lowest validation loss.
        checkpoint_dir: Folder for per-epoch checkpoints (None: no checkpoints).
        verbose: Print progress.
        higher_is_better: Orientation of ``metric`` (False for errors such as rmse).
        valid_label: Prefix of the validation loss and metric in the history and the progress
            lines ("valid": held-out data; e.g. "seen" when the validation records are part of
            the training data, as in a refit on all records, so no line calls them held out).

    Attributes:
        history: One record per epoch (epoch, train and validation loss, metric, seconds).
        kept_epoch: The epoch whose weights the model holds after ``fit``: the best validation
            epoch, or the last one with ``keep_last``. None before ``fit`` (and after resuming
            a checkpoint written before it was recorded, unless a later epoch was kept).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        specs: Mapping[str, InputSpec],
        config: TrainConfig,
        metric: tuple[str, MetricFn] | None = None,
        checkpoint_dir: Path | None = None,
        verbose: bool = True,
        higher_is_better: bool = True,
        valid_label: str = "valid",
        deadline: float | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.specs = dict(specs)
        self.config = config
        self.metric = metric
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose
        self.sign = 1.0 if higher_is_better else -1.0
        self.valid_label = valid_label
        self.deadline = deadline
        self.device = resolve_device(config.device)
        self.history: list[dict[str, float]] = []
        self.kept_epoch: int | None = None
        self.net: nn.Module = model

    def fit(self, train: TensorData, valid: TensorData, resume: bool = False) -> list[dict[str, float]]:
        """Trains, restores the best weights and returns the per-epoch history."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        model = self.model.to(self.device)
        fit_input_statistics(model, train.inputs, train.mask)
        self.net = distributed.wrap(model, self.device)  # the model, or DDP around it
        optimizer = torch.optim.AdamW(
            parameter_groups(model, cfg.lr, cfg.backbone_lr_scale), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        best_state, best, stale, start, best_epoch = self._snapshot(), [-float("inf")] * 2, 0, 1, 0
        fingerprint = data_fingerprint(train, valid) if self.checkpoint_dir is not None else ""
        if resume and self.checkpoint_dir is not None:
            restored = self._restore(model, optimizer, fingerprint)
            if restored is not None:
                state, best_state = restored
                self.history, best, stale = state["history"], state["best"], state["stale"]
                best_epoch = int(state.get("best_epoch", 0))
                start = state["epoch"] + 1
                log(f"resuming after epoch {state['epoch']}", self.verbose)
        robust = self.metric is not None and cfg.modality_dropout > 0 and len(valid.mask) > 1
        for epoch in range(start, cfg.epochs + 1):
            if cfg.patience and stale >= cfg.patience:
                break
            if distributed.any_process(self._out_of_time()):  # all processes stop together
                log(f"stopping before epoch {epoch}: the time limit would pass during it", self.verbose)
                break
            began = time.perf_counter()
            train_loss, done = self._train_epoch(train, optimizer, epoch)
            valid_loss, metric = self._validate(valid)
            hidden = self._hidden_metric(valid) if robust else None
            selection = metric if hidden is None else (metric + hidden) / 2
            if not np.isfinite(valid_loss):  # the epoch's last step diverged
                raise MmfuseError(f"training stopped: the loss became {valid_loss} at epoch {epoch}, on the "
                                  "validation records after its last batch; training diverged: lower --lr, or "
                                  "standardise extreme values. No model was written.")
            score = self.sign * selection if np.isfinite(selection) else -float("inf")
            key = [score if self.metric is not None else 0.0, -valid_loss]
            if _better(key, best):
                best, best_state, stale, best_epoch = key, self._snapshot(), 0, epoch
            else:
                stale += 1
            record = {"epoch": epoch, "train_loss": train_loss}
            record[f"{self.valid_label}_loss"] = valid_loss
            if self.metric is not None:
                record[f"{self.valid_label}_{self.metric[0]}"] = metric
            if hidden is not None:
                record[f"{self.valid_label}_{self.metric[0]}_hidden"] = hidden
            record["seconds"] = time.perf_counter() - began
            record.update({"epoch_fraction": done} if done < 1.0 else {})
            self.history.append(record)
            self._report(record)
            if done < 1.0:  # not checkpointed: a resumed run trains the whole epoch again
                log(f"the time limit passed during epoch {epoch}: stopped after {done:.0%} of it", self.verbose)
                break
            if self.checkpoint_dir is not None and distributed.is_main():
                state = {"epoch": epoch, "history": self.history, "best": best, "stale": stale,
                         "best_epoch": best_epoch, "config": self._resumable_settings(),
                         "data": fingerprint}
                save_checkpoint(self.checkpoint_dir, model, best_state, optimizer, state)
        if not cfg.keep_last:
            model.load_state_dict(best_state)
        last = int(self.history[-1]["epoch"]) if self.history else 0
        self.kept_epoch = (last if cfg.keep_last else best_epoch) or None
        self._report_kept()
        return self.history

    def _out_of_time(self) -> bool:
        """Whether another epoch, as long as the last one, would end after the deadline."""
        if self.deadline is None or not self.history:
            return False
        return time.perf_counter() + float(self.history[-1]["seconds"]) > self.deadline

    def _report_kept(self) -> None:
        """One line naming the epoch whose weights the model keeps, and why."""
        if not self.verbose or self.kept_epoch is None:
            return
        if self.config.keep_last:
            log(f"kept epoch {self.kept_epoch}, the last")
            return
        record = next(h for h in self.history if int(h["epoch"]) == self.kept_epoch)
        name = f"{self.valid_label}_{self.metric[0] if self.metric is not None else 'loss'}"
        if f"{name}_hidden" in record:  # chosen on the mean of the two
            log(f"kept epoch {self.kept_epoch} of {len(self.history)}: best mean of {name}={record[name]:.4f} and "
                f"{name}_hidden={record[name + '_hidden']:.4f} (each modality hidden in turn)")
            return
        log(f"kept epoch {self.kept_epoch} of {len(self.history)}: best {name}={record[name]:.4f}")

    def _resumable_settings(self) -> dict[str, Any]:
        """Settings that must match for a resumed run to equal an uninterrupted one."""
        settings = dataclasses.asdict(self.config)
        settings.pop("epochs")  # a resumed run may be given more epochs
        return settings

    def _restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, fingerprint: str) -> Any:
        assert self.checkpoint_dir is not None
        try:
            restored = load_checkpoint(self.checkpoint_dir, model, optimizer)
        except (RuntimeError, ValueError, KeyError) as err:
            raise MmfuseError(
                f"cannot resume from {self.checkpoint_dir}: it was written by a different model "
                f"({str(err).splitlines()[0]}); fit without --resume or use another --out"
            ) from None
        if restored is not None:
            saved = restored[0].get("config", self._resumable_settings())
            changed = sorted(k for k, v in self._resumable_settings().items() if saved.get(k) != v)
            if changed:
                raise MmfuseError(
                    f"cannot resume from {self.checkpoint_dir}: these settings differ from the "
                    f"interrupted run: {', '.join(changed)}"
                )
            if restored[0].get("data", fingerprint) != fingerprint:
                raise MmfuseError(
                    f"cannot resume from {self.checkpoint_dir}: the training or validation data "
                    "differ from the interrupted run's (their content fingerprint changed); "
                    "fit without --resume to start again, or resume with the same data"
                )
        return restored

    def _train_epoch(self, data: TensorData, optimizer: torch.optim.Optimizer, epoch: int) -> tuple[float, float]:
        """(mean training loss, share of the batches run): past the deadline no batch starts (in
        every process together), so a time limit holds even when one epoch is longer than it."""
        cfg = self.config
        self.model.train()
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout, reproducible on resume
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(data), generator=gen)
        total, count = 0.0, 0
        batches: Any = [distributed.share(b) for b in order.split(cfg.batch_size)
                        if len(b) >= distributed.size()]  # a share for every process
        planned = steps = len(batches)
        if self.verbose and is_terminal():  # a live bar on a terminal; plain epoch lines otherwise
            batches = track(batches, len(batches), f"epoch {epoch}/{cfg.epochs}")
        for step, index in enumerate(batches, start=1):
            if step > 1 and self.deadline is not None and distributed.any_process(time.perf_counter() > self.deadline):
                steps = step - 1
                break
            batch = data.batch(index, self.device)
            inputs = augment_batch(batch.inputs, self.specs, cfg.augment, gen)
            mask = self._drop_modalities(batch.mask, gen)
            with self._autocast():
                output = self.net(inputs, mask)
                loss = self.task.loss(output, batch.targets)["loss"]
            if not torch.isfinite(loss):
                raise MmfuseError(_non_finite_loss(loss, epoch, step, batch.inputs))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(index)
            count += len(index)
        total, count = distributed.summed([total, count])
        return total / max(count, 1), steps / max(planned, 1)

    def _drop_modalities(self, mask: Mapping[str, Tensor], gen: torch.Generator) -> dict[str, Tensor]:
        """Hides each present modality with probability p, keeping at least one per sample."""
        p = self.config.modality_dropout
        if not p or len(mask) < 2:
            return dict(mask)
        names = sorted(mask)
        present = torch.stack([mask[m] for m in names], 1)  # (B, M)
        keep = torch.rand(present.shape, generator=gen).to(present.device) >= p
        dropped = present & keep
        empty = ~dropped.any(1) & present.any(1)
        dropped[empty] = present[empty]
        return {m: dropped[:, i] for i, m in enumerate(names)}

    @torch.no_grad()
    def predict(self, data: TensorData, batch_size: int = 256) -> ModelOutput:
        """The model's output for every record, in order (eval mode; float32 CPU tensors):
        logits or values for a classifier or regressor, embeddings for a retrieval model."""
        self.model.eval()

        def batches() -> Iterator[ModelOutput]:
            for index in torch.arange(len(data)).split(batch_size):
                batch = data.batch(index, self.device)
                with self._autocast():
                    yield self.model(batch.inputs, batch.mask).cpu()

        return ModelOutput.cat(batches(), len(data))

    def _validate(self, data: TensorData) -> tuple[float, float]:
        output = self.predict(data)
        assert data.targets is not None
        loss = float(self.task.eval_loss(output, data.targets))
        if self.metric is None or not np.isfinite(loss):  # a diverged model: fit stops on the loss
            return loss, float("nan")
        predictions = self.task.predict(output).numpy()
        return loss, self.metric[1](data.targets.numpy(), predictions)

    def _hidden_metric(self, data: TensorData) -> float:
        """The mean, over the modalities, of the validation metric with that modality hidden
        wherever another one is present: how well the model does without each of them."""
        assert self.metric is not None and data.targets is not None
        values = []
        for m in sorted(data.mask):
            others = torch.stack([v for k, v in data.mask.items() if k != m]).any(0)
            view = TensorData(data.inputs, {**data.mask, m: data.mask[m] & ~others}, data.targets)
            predictions = self.task.predict(self.predict(view)).numpy()
            values.append(self.metric[1](data.targets.numpy(), predictions))
        return float(np.mean(values))

    def _snapshot(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in copy.copy(self.model.state_dict()).items()}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()

    def _report(self, record: Mapping[str, float]) -> None:
        if not self.verbose:
            return
        values = [f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds")]
        line = "  ".join([f"epoch {int(record['epoch'])}/{self.config.epochs}", *values, f"{record['seconds']:.1f}s"])
        if is_terminal():
            from rich.console import Console

            Console(stderr=True).print(line, highlight=False)
        else:
            log(line)


def _non_finite_loss(loss: Tensor, epoch: int, step: int, inputs: Mapping[str, Tensor]) -> str:
    """Why training stopped: the loss, where, and which modality inputs were not finite."""
    bad = sorted(m for m, x in inputs.items() if x.is_floating_point() and not torch.isfinite(x).all())
    cause = (f"the inputs of {', '.join(bad)} hold NaN or infinite values" if bad else
             "the inputs are finite, so training diverged: lower --lr, or standardise extreme values")
    return (f"training stopped: the loss became {float(loss.detach())} at epoch {epoch}, batch {step}; "
            f"{cause}. No model was written.")


def _better(key: list[float], best: list[float]) -> bool:
    """(oriented metric, -loss) compared lexicographically, with tolerances."""
    return key[0] > best[0] + 1e-9 or (abs(key[0] - best[0]) <= 1e-9 and key[1] > best[1] + 1e-6)


def parameter_groups(model: nn.Module, lr: float, backbone_scale: float) -> list[dict[str, Any]]:
    """AdamW groups: pretrained networks (``.backbone.`` parameters) at ``lr * backbone_scale``."""
    pretrained, fresh = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (pretrained if ".backbone." in f".{name}" else fresh).append(param)
    groups: list[dict[str, Any]] = [{"params": fresh, "lr": lr}]
    if pretrained:
        groups.append({"params": pretrained, "lr": lr * backbone_scale})
    return groups
