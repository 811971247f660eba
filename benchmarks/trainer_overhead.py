#!/usr/bin/env python
"""mmfuse's Trainer against a hand-written PyTorch loop, same model and data, one run.

Both sides train an identical fresh copy of the same feature-level attention model (image
CNN + text GRU + tabular MLP) on the same synthetic in-memory tensors, with the same work
per epoch: AdamW (same lr / weight decay), ``torch.randperm`` shuffling, slicing a dict of
tensors into batches of 64, ``forward(inputs, mask)``, cross-entropy, ``zero_grad`` /
``backward`` / ``clip_grad_norm_(1.0)`` / ``step``, then a no-grad validation pass (eval mode,
batches of 256, loss). The hand loop seeds exactly like the Trainer, so with ``augment="none"``
both sides see the same batches and dropout masks and should report the same losses
(``same_losses`` in the output checks that they really did the same work).

After a one-epoch warm-up of each side, runs are interleaved (mmfuse, hand, mmfuse_light, then
mmfuse_light, hand, mmfuse, ...) so that drift in machine speed affects all sides alike; the
medians of the per-epoch times are compared. The target is ``ratio_mmfuse_over_hand <= 1.10``.
Run it on an otherwise idle machine: a busy neighbour oversubscribes torch's threads and can
make single epochs several times slower (see ``loadavg_*`` and the per-repeat times).

A third side, mmfuse with the default ``augment="light"``, is reported separately: it does
extra work (augmentation) that the hand loop does not do, and shows what that costs.

Prints one JSON object to stdout. Usage::

    .venv/bin/python benchmarks/trainer_overhead.py [--epochs 2] [--repeats 6] [--threads N]
        [--no-light] [--train-records 2048] [--valid-records 512] [--quick]

``--quick`` (128 + 64 records, 1 epoch, 1 repeat) is a smoke run of a few seconds; its numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.data.tensors import TensorData
from mmfuse.models.builder import ModelConfig, build_model
from mmfuse.tasks import create_task
from mmfuse.training.trainer import Trainer, TrainConfig
from mmfuse.types import InputSpec

from _quick import parse_with_quick

N_TRAIN, N_VALID, BATCH, VALID_BATCH = 2048, 512, 64, 256
QUICK = {"epochs": 1, "repeats": 1, "train_records": 128, "valid_records": 64}
VOCAB, TEXT_LEN, IMAGE_SHAPE = 2000, 64, (3, 32, 32)
NUM_NUMERIC, CARDINALITIES = 4, (12, 6)
SEED = 0
LR, WEIGHT_DECAY, GRAD_CLIP = TrainConfig.lr, TrainConfig.weight_decay, TrainConfig.grad_clip

SPECS = {
    "image": InputSpec("image", IMAGE_SHAPE),
    "text": InputSpec("text", (TEXT_LEN,), vocab_size=VOCAB),
    "tabular": InputSpec(
        "tabular",
        (NUM_NUMERIC + len(CARDINALITIES),),
        num_numeric=NUM_NUMERIC,
        cardinalities=CARDINALITIES,
    ),
}
MODEL_CONFIG = ModelConfig(
    level="feature",
    fusion="attention",
    encoders={"image": "cnn", "text": "gru", "tabular": "mlp"},
    task="classification",
    num_outputs=2,
)


def make_data(n: int, gen: torch.Generator) -> TensorData:
    """Synthetic records: a learnable label, variable-length text, ~10 % missing per modality."""
    y = torch.randint(0, 2, (n,), generator=gen)
    image = torch.randn((n, *IMAGE_SHAPE), generator=gen) + 0.5 * y.view(n, 1, 1, 1)
    lengths = torch.randint(8, TEXT_LEN + 1, (n,), generator=gen)
    tokens = torch.randint(2, VOCAB, (n, TEXT_LEN), generator=gen)
    tokens[:, 0] = 2 + y  # a label-bearing first token
    tokens[torch.arange(TEXT_LEN).unsqueeze(0) >= lengths.unsqueeze(1)] = 0  # right padding
    numeric = torch.randn((n, NUM_NUMERIC), generator=gen) + y.unsqueeze(1)
    codes = torch.stack([torch.randint(0, c, (n,), generator=gen) for c in CARDINALITIES], 1)
    tabular = torch.cat([numeric, codes.float()], 1)
    present = torch.rand((n, 3), generator=gen) >= 0.1
    present[~present.any(1), 0] = True  # at least one modality per record
    inputs = {"image": image, "tabular": tabular, "text": tokens}
    mask = {m: present[:, i].contiguous() for i, m in enumerate(("image", "tabular", "text"))}
    return TensorData(inputs, mask, y.float())


def fresh_model(initial: dict[str, Tensor]) -> nn.Module:
    model = build_model(MODEL_CONFIG, SPECS)
    model.load_state_dict(initial)
    return model


def run_mmfuse(
    initial: dict[str, Tensor], train: TensorData, valid: TensorData, epochs: int, augment: str
) -> dict[str, Any]:
    model = fresh_model(initial)
    task = create_task("classification", 2)
    config = TrainConfig(
        epochs=epochs, patience=0, augment=augment, batch_size=BATCH, seed=SEED, device="cpu"
    )
    trainer = Trainer(model, task, SPECS, config, metric=None, checkpoint_dir=None, verbose=False)
    began = time.perf_counter()
    history = trainer.fit(train, valid)
    wall = time.perf_counter() - began
    return {
        "epoch_seconds": [h["seconds"] for h in history],
        "wall": wall,
        "train_loss": [h["train_loss"] for h in history],
        "valid_loss": [h["valid_loss"] for h in history],
    }


def run_hand(
    initial: dict[str, Tensor], train: TensorData, valid: TensorData, epochs: int
) -> dict[str, Any]:
    """A plain PyTorch loop doing the Trainer's per-epoch work (seeded the same way)."""
    model = fresh_model(initial)
    began = time.perf_counter()
    torch.manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    n_train, n_valid = len(train), len(valid)
    assert train.targets is not None and valid.targets is not None
    y_valid = valid.targets.long()
    epoch_seconds, train_losses, valid_losses = [], [], []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        torch.manual_seed(SEED * 100_003 + epoch)
        gen = torch.Generator().manual_seed(SEED * 100_003 + epoch)
        order = torch.randperm(n_train, generator=gen)
        total = 0.0
        for index in order.split(BATCH):
            inputs = {m: x[index] for m, x in train.inputs.items()}
            mask = {m: v[index] for m, v in train.mask.items()}
            y = train.targets[index].long()
            loss = F.cross_entropy(model(inputs, mask).logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            total += float(loss.detach()) * len(index)
        model.eval()
        with torch.no_grad():
            logits = []
            for index in torch.arange(n_valid).split(VALID_BATCH):
                inputs = {m: x[index] for m, x in valid.inputs.items()}
                mask = {m: v[index] for m, v in valid.mask.items()}
                logits.append(model(inputs, mask).logits)
            valid_loss = float(F.cross_entropy(torch.cat(logits), y_valid))
        epoch_seconds.append(time.perf_counter() - t0)
        train_losses.append(total / n_train)
        valid_losses.append(valid_loss)
    return {
        "epoch_seconds": epoch_seconds,
        "wall": time.perf_counter() - began,
        "train_loss": train_losses,
        "valid_loss": valid_losses,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    epochs = [s for r in runs for s in r["epoch_seconds"]]
    return {
        "median_epoch_s": statistics.median(epochs),
        "min_epoch_s": min(epochs),
        "max_epoch_s": max(epochs),
        "median_wall_per_epoch_s": statistics.median(
            r["wall"] / len(r["epoch_seconds"]) for r in runs
        ),
        "epoch_seconds_per_repeat": [[round(s, 4) for s in r["epoch_seconds"]] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed run (default 2)")
    parser.add_argument(
        "--repeats", type=int, default=6, help="interleaved repetitions (default 6)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--no-light", action="store_true", help="skip the augment='light' side")
    parser.add_argument("--train-records", type=int, default=N_TRAIN, help="(default %(default)s)")
    parser.add_argument("--valid-records", type=int, default=N_VALID, help="(default %(default)s)")
    args = parse_with_quick(parser, QUICK)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(1234)
    train, valid = make_data(args.train_records, gen), make_data(args.valid_records, gen)
    torch.manual_seed(SEED)
    base = build_model(MODEL_CONFIG, SPECS)
    initial = {k: v.detach().clone() for k, v in base.state_dict().items()}
    n_params = sum(p.numel() for p in base.parameters())
    del base

    # Warm-up: one epoch of each side (allocator, oneDNN kernels, lazy imports).
    run_mmfuse(initial, train, valid, 1, "none")
    run_hand(initial, train, valid, 1)
    if not args.no_light:
        run_mmfuse(initial, train, valid, 1, "light")

    runners = {
        "mmfuse": lambda: run_mmfuse(initial, train, valid, args.epochs, "none"),
        "hand": lambda: run_hand(initial, train, valid, args.epochs),
        "mmfuse_light": lambda: run_mmfuse(initial, train, valid, args.epochs, "light"),
    }
    names = ["mmfuse", "hand"] + ([] if args.no_light else ["mmfuse_light"])
    sides: dict[str, list[dict[str, Any]]] = {name: [] for name in runners}
    order = []
    load_before = os.getloadavg()
    began = time.perf_counter()
    for repeat in range(args.repeats):
        # A B C, C B A, A B C, ...: alternating, and linear drift cancels over each pair of repeats.
        for name in names if repeat % 2 == 0 else names[::-1]:
            sides[name].append(runners[name]())
            order.append(name)
    total = time.perf_counter() - began
    load_after = os.getloadavg()

    mm, hand = summarise(sides["mmfuse"]), summarise(sides["hand"])
    ratio = mm["median_epoch_s"] / hand["median_epoch_s"]
    per_repeat = [
        statistics.mean(a["epoch_seconds"]) / statistics.mean(b["epoch_seconds"])
        for a, b in zip(sides["mmfuse"], sides["hand"])
    ]
    same = all(
        abs(x - y) <= 1e-5 * max(1.0, abs(y))
        for a, b in zip(sides["mmfuse"], sides["hand"])
        for key in ("train_loss", "valid_loss")
        for x, y in zip(a[key], b[key])
    )
    result: dict[str, Any] = {
        "benchmark": "trainer_overhead",
        "ratio_mmfuse_over_hand": round(ratio, 4),
        "target_ratio": 1.10,
        "within_target": ratio <= 1.10,
        "ratio_wall_per_epoch": round(
            mm["median_wall_per_epoch_s"] / hand["median_wall_per_epoch_s"], 4
        ),
        "ratio_min_epoch": round(mm["min_epoch_s"] / hand["min_epoch_s"], 4),
        "ratio_per_repeat": [round(r, 4) for r in per_repeat],
        "ratio_median_of_repeats": round(statistics.median(per_repeat), 4),
        "same_losses": same,
        "mmfuse": mm,
        "hand": hand,
        "setup": {
            "model": MODEL_CONFIG.to_dict(),
            "parameters": n_params,
            "n_train": args.train_records,
            "n_valid": args.valid_records,
            "quick": args.quick,
            "batch_size": BATCH,
            "valid_batch_size": VALID_BATCH,
            "epochs_per_run": args.epochs,
            "repeats": args.repeats,
            "order": "warm-up (1 epoch each), then " + " ".join(order),
            "timed_seconds_total": round(total, 2),
            "timing": "per epoch: Trainer history 'seconds' vs perf_counter around the hand loop's "
            "train + validation; wall: whole fit() / whole hand run, divided by epochs",
        },
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "cpu_count": os.cpu_count(),
            "cpu_affinity": (
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            ),
            "platform": platform.platform(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "note": "other busy processes distort CPU timings badly (oversubscribed torch "
            "threads); this run itself adds about torch_num_threads to the load average, so a "
            "1-minute load well above that, or a few epochs far slower than the rest, means "
            "another process competed and the numbers are suspect",
        },
    }
    if not args.no_light:
        light = summarise(sides["mmfuse_light"])
        result["mmfuse_light"] = {
            "note": "extra work: augment='light' (the Trainer's default) augments every batch; "
            "the hand loop does no augmentation, so this is the cost of augmentation, not overhead",
            "ratio_over_hand": round(light["median_epoch_s"] / hand["median_epoch_s"], 4),
            "ratio_over_mmfuse_none": round(light["median_epoch_s"] / mm["median_epoch_s"], 4),
            **light,
        }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
