#!/usr/bin/env python
"""Parameters and forward(+backward) time of every registered fusion operator, M = 2..5.

For every operator in the fusion registry and every number of modalities ``M`` (default 2..5)
this builds the operator on ``M`` modalities named ``m0 .. m{M-1}`` and times it on one batch
of ``B`` random records, all in one process so the numbers sit side by side:

- early / feature level: inputs ``{m: (B, D)}``; the operator gets ``dim=D`` where its
  constructor takes ``dim`` (``concat`` does not: its output is ``M * D`` wide);
- decision level ("late"): inputs are per-modality logits ``{m: (B, C)}``, the operator is
  built with ``input_dims={m: C}`` and ``task="classification"``. Operators with a
  ``fit_combiner`` (``weighted``, ``stacking``, ``confidence``) are first fitted on seeded
  random held-out logits, so the timed path is the fitted one (before fitting ``stacking`` and
  ``weighted`` reduce to ``mean``);
- a seeded presence mask with about ``--missing`` (10 %) of the entries missing; a record may
  have every modality missing (operators must handle it).

Measured per (operator, M): trainable parameters, buffer elements, the median wall time of one
training step's worth of fusion work in train mode (``op(x, mask).sum().backward()``, inputs
with ``requires_grad``, gradients cleared outside the timed region) and the median of a forward
pass in eval mode under ``torch.no_grad``.

The whole sweep runs ``--rounds`` times (alternately forwards and backwards over the cases, each
case rebuilt with the same seeds) and the samples of a case are pooled, so a burst of work from
another process spoils only part of them; ``noisy`` marks a case whose median is still over
1.5x its minimum. In each round a case gets untimed warm-up calls (``--warmup``, at least one)
and an untimed probe call that sizes the rest: slow operators get fewer warm-up calls and fewer
repeats, so that one (operator, M) pair spends about ``--budget`` seconds timing in all, but
never fewer than ``--min-repeats`` samples.

Run it on an otherwise idle machine (see ``loadavg_*``): other busy processes oversubscribe
torch's threads and make CPU timings swing widely.

Prints one JSON object to stdout (``table``: forward+backward ms per operator and M). Usage::

    .venv/bin/python benchmarks/fusion_complexity.py [--batch 256] [--dim 256] [--classes 10]
        [--modalities 2 3 4 5] [--repeats 20] [--rounds 2] [--threads N]
        [--fusions attention mean ...] [--quick]

``--quick`` (B=8, D=8, C=3, M = 2 and 3, one timed call per case, one round) is a smoke run of a
few seconds over every registered operator; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mmfuse.fusion import FUSIONS, create_fusion, list_fusions

from _quick import parse_with_quick

SEED = 0
FIT_RECORDS = 512
NOISY_RATIO = 1.5
FWD_SHARE = 0.5  # rough cost of a no-grad forward relative to forward + backward
QUICK = {
    "batch": 8, "dim": 8, "classes": 3, "modalities": [2, 3], "repeats": 1, "min_repeats": 1,
    "rounds": 1, "warmup": 1, "budget": 0.01,
}  # fmt: skip


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _time_ms(fn: Callable[[], None], setup: Callable[[], None], repeats: int) -> list[float]:
    """Wall times (ms) of ``repeats`` calls of ``fn``, each preceded by an untimed ``setup``."""
    times = []
    for _ in range(repeats):
        setup()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _fit_late(op: nn.Module, modalities: list[str], classes: int, missing: float) -> bool:
    """Fits a decision-level combiner on seeded random held-out logits; False if it has none."""
    fit = getattr(op, "fit_combiner", None)
    if fit is None:
        return False
    gen = torch.Generator().manual_seed(SEED + 7)
    targets = torch.randint(0, classes, (FIT_RECORDS,), generator=gen)
    # logits that are informative to a varying degree, so the fit is not degenerate
    outputs = {
        m: torch.randn(FIT_RECORDS, classes, generator=gen)
        + (1.0 + i) * nn.functional.one_hot(targets, classes).float()
        for i, m in enumerate(modalities)
    }
    mask = {m: torch.rand(FIT_RECORDS, generator=gen) >= missing for m in modalities}
    fit(outputs, mask, targets.float())
    return True


def bench_one(
    name: str, m_count: int, args: argparse.Namespace, repeats: int, min_repeats: int, budget: float
) -> dict[str, Any]:
    """One round of one (operator, M) case: at most ``repeats`` timed calls in ``budget`` s."""
    cls = FUSIONS.get(name)
    level = str(cls.level)
    modalities = [f"m{i}" for i in range(m_count)]
    late = level == "late"
    width = args.classes if late else args.dim
    hparams: dict[str, Any] = {}
    if late:
        hparams["task"] = "classification"
    elif "dim" in inspect.signature(cls.__init__).parameters:
        hparams["dim"] = args.dim
    torch.manual_seed(SEED)
    op = create_fusion(name, {m: width for m in modalities}, **hparams)
    fitted = _fit_late(op, modalities, args.classes, args.missing) if late else False

    gen = torch.Generator().manual_seed(SEED + m_count)
    data = {m: torch.randn(args.batch, width, generator=gen) for m in modalities}
    mask = {m: torch.rand(args.batch, generator=gen) >= args.missing for m in modalities}
    x = {m: t.clone().requires_grad_(True) for m, t in data.items()}

    def clear() -> None:
        op.zero_grad(set_to_none=True)
        for t in x.values():
            t.grad = None

    def fwd_bwd() -> None:
        op(x, mask).sum().backward()

    def fwd() -> None:
        with torch.no_grad():
            op(data, mask)

    with torch.no_grad():
        out_shape = list(op.eval()(data, mask).shape)

    # forward + backward, train mode. The first call and a probe call are untimed warm-up;
    # the probe sets how many more warm-up calls and timed repeats fit into the budget.
    op.train()
    clear()
    fwd_bwd()
    probe = _time_ms(fwd_bwd, clear, 1)[0] / 1e3
    per_case = probe * (1 + FWD_SHARE)  # one fwd_bwd and one (cheaper) fwd call, roughly
    warmup = max(0, args.warmup - 2) if per_case * args.warmup <= budget / 4 else 0
    if per_case * repeats > budget:
        repeats = max(min_repeats, int(budget / max(per_case, 1e-9)))
    for _ in range(warmup):
        clear()
        fwd_bwd()
    fb_times = _time_ms(fwd_bwd, clear, repeats)
    clear()

    # forward only, eval mode, no grad
    op.eval()
    for _ in range(max(1, warmup)):
        fwd()
    f_times = _time_ms(fwd, lambda: None, repeats)

    return {
        "fusion": name,
        "level": level,
        "M": m_count,
        "parameters": sum(p.numel() for p in op.parameters() if p.requires_grad),
        "buffers": sum(b.numel() for b in op.buffers()),
        "hparams": hparams,
        "fitted": fitted,
        "output_shape": out_shape,
        "fwd_bwd_times": fb_times,
        "fwd_times": f_times,
        "repeats": repeats,
        "warmup_calls": 2 + warmup,
    }


def summarise(case: dict[str, Any]) -> dict[str, Any]:
    """Medians (and minima) of the pooled per-round samples of one case."""
    if "error" in case:
        return case
    fb, f = case.pop("fwd_bwd_times"), case.pop("fwd_times")
    fb_median, f_median = statistics.median(fb), statistics.median(f)
    return {
        **case,
        "fwd_bwd_ms": round(fb_median, 4),
        "fwd_ms": round(f_median, 4),
        "fwd_bwd_ms_min": round(min(fb), 4),
        "fwd_ms_min": round(min(f), 4),
        # a median far above the minimum: the samples were disturbed (another busy process?)
        "noisy": fb_median > NOISY_RATIO * min(fb) or f_median > NOISY_RATIO * min(f),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batch", type=int, default=256, help="batch size B (default 256)")
    parser.add_argument("--dim", type=int, default=256, help="modality / fusion dim D (256)")
    parser.add_argument("--classes", type=int, default=10, help="classes C, late level (10)")
    parser.add_argument(
        "--modalities", type=int, nargs="+", default=[2, 3, 4, 5], help="values of M (2 3 4 5)"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per case (20)")
    parser.add_argument("--min-repeats", type=int, default=3, help="floor for slow ops (3)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="passes over all cases, samples pooled (2)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed calls first, fewer for slow ops (3)"
    )
    parser.add_argument(
        "--budget", type=float, default=1.5, help="target seconds of timed calls per case (1.5)"
    )
    parser.add_argument("--missing", type=float, default=0.1, help="missing fraction (0.1)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: all cores)"
    )
    parser.add_argument("--fusions", nargs="+", default=None, help="subset (default: all)")
    args = parse_with_quick(parser, QUICK)
    torch.set_num_threads(args.threads if args.threads is not None else _cpu_count())
    names = args.fusions if args.fusions is not None else list_fusions()

    load_before = os.getloadavg()
    began = time.perf_counter()
    cases = [(name, m_count) for name in names for m_count in args.modalities]
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    per_round = math.ceil(args.repeats / args.rounds)
    min_per_round = math.ceil(args.min_repeats / args.rounds)
    for round_ in range(args.rounds):
        # forward, backward, forward, ...: drift in machine speed and a neighbour's burst of
        # work spread over all cases instead of hitting all samples of a few
        for case in cases if round_ % 2 == 0 else cases[::-1]:
            done = merged.get(case)
            if done is not None and "error" in done:
                continue
            try:
                one = bench_one(*case, args, per_round, min_per_round, args.budget / args.rounds)
            except Exception as exc:  # report it and go on: one broken operator hides no other
                error = f"{type(exc).__name__}: {exc}"
                merged[case] = {"fusion": case[0], "M": case[1], "error": error}
                continue
            if done is None:
                merged[case] = one
            else:
                for key in ("fwd_bwd_times", "fwd_times"):
                    done[key] += one[key]
                done["repeats"] += one["repeats"]
                done["warmup_calls"] += one["warmup_calls"]
    results = [summarise(merged[case]) for case in cases]
    total = time.perf_counter() - began
    load_after = os.getloadavg()

    def table(key: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in results:
            out.setdefault(r["fusion"], {})[f"M={r['M']}"] = r.get(key, None)
        return out

    result: dict[str, Any] = {
        "benchmark": "fusion_complexity",
        "setup": {
            "B": args.batch,
            "D": args.dim,
            "C": args.classes,
            "M": args.modalities,
            "quick": args.quick,
            "missing_fraction": args.missing,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "min_repeats": args.min_repeats,
            "warmup": args.warmup,
            "budget_s_per_case": args.budget,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "cpu_affinity": _cpu_count(),
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in load_after],
            "timed_seconds_total": round(total, 2),
            "timing": "fwd_bwd_ms: median wall time of op(x, mask).sum().backward() in train "
            "mode (inputs require grad, grads cleared untimed); fwd_ms: median of op(x, mask) "
            "in eval mode under torch.no_grad; both after warm-up, time.perf_counter",
            "inputs": "early/feature: {m: (B, D)}, dim=D where the constructor takes it; "
            "late: logits {m: (B, C)}, task='classification', fitted on random held-out "
            "logits where the operator has fit_combiner",
            "note": "this run adds about `threads` to the load average; a 1-minute load well "
            "above that means another process competed and the timings are suspect",
        },
        "noisy_cases": [f"{r['fusion']} M={r['M']}" for r in results if r.get("noisy")],
        "results": results,
        "table": table("fwd_bwd_ms"),
        "table_fwd_ms": table("fwd_ms"),
        "table_parameters": table("parameters"),
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
