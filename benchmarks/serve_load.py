#!/usr/bin/env python
"""A bounded load test of ``mmfuse serve`` on 127.0.0.1, and ONNX Runtime against PyTorch eager.

What is served is built first, in a temp folder (or ``--work DIR``, reused when a previous run
with the same sizes left it there): the demo dataset (``--rows`` records) and a classifier of
its image, review and income; a paired image-caption dataset (``--items`` images x 2
captions), a retrieval model and an index of its images. Encoders are trained from scratch;
``--pretrained`` (or ``MMFUSE_PRETRAINED=1``) uses the packaged frozen EfficientNet-Lite0 and
MiniLM instead, fitted with ``--no-cache`` so that every request runs the networks (the
requests repeat the training files, which the feature cache would answer without encoding).

Two servers run side by side as subprocesses (``python -m mmfuse.cli.main serve``, each on a
free port with ``--threads``): one batching (``--max-batch 32``), one not (``--max-batch 1``).
The client is an ``httpx.AsyncClient`` in this process. For each concurrency C of
``--concurrency`` (default 1, 8, 32), C clients send requests until ``--requests`` have been
answered, after max(C, 10) warm-up requests that are not counted; the servers take turns level by
level. Per level: requests/s, p50/p95/p99/mean latency in ms (client side), errors (any answer
but 200; there should be none), the server's mean batch size (from its /metrics) and this
process's CPU seconds (the client's share of the cores):

* ``predict``: multipart ``/v1/predict`` of demo records (image file + review + income, the
  records in turn), on both servers; ``speedup_at_32`` is batched over unbatched requests/s;
* ``search``: text queries (the captions in turn, k=10) on the batching server's index.

``memory``: the batching server's resident memory (``VmRSS`` in /proc/PID/status) over
``--memory-requests`` more requests (predict and search alternating, 8 clients), sampled 20
times; ``flat`` when the last sample is within 5 % (or 20 MiB) of the sample after the first
tenth of the run; ``slope_mib_per_1k``: the least-squares slope from that sample on.

``onnx_vs_eager``: ``--onnx-records`` demo records, prepared once, through the fitted model in
PyTorch eager (``mmfuse.export.reference_outputs``, as the export's parity check runs it) and
through its ONNX graph in ONNX Runtime (``export_onnx`` + ``OnnxModel``), in this process with
``--threads`` threads, at batch 1 and 32: the median over ``--onnx-repeats`` of ms per record,
and the largest difference between the two sides' probabilities.

Goals (``goals``): batching gives >= 3x the one-at-a-time predict throughput at 32 clients; a
warm text search answers in < 50 ms p95 (1 client, after warm-up); the memory stays flat.

Usage::

    .venv/bin/python benchmarks/serve_load.py [--requests 400] [--memory-requests 10000] \\
        [--threads 2] [--pretrained] [--work DIR] [--out FILE]

``--quick`` (48 records, 1 epoch, 16-dim models, 40 requests a level, 200 for memory, 32 ONNX
records) is a smoke run of under a minute; its numbers mean nothing. The JSON object goes to
stdout (and ``--out``), progress and the fits' reports to stderr. Run the full mode on an
otherwise idle machine: the client and the servers share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import mimetypes
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _quick import parse_with_quick

QUICK = {"rows": 48, "items": 24, "epochs": 1, "dim": 16, "requests": 40,
         "memory_requests": 200, "onnx_records": 32}  # fmt: skip
FEATURES = "image,review,income"
SIZES = ("rows", "items", "epochs", "dim", "pretrained")
"""The options that decide what is built (a reused ``--work`` folder must match them)."""
WARM_UP = 10
"""The fewest requests each level sends before it measures."""
MiB = 2**20
GOAL_SPEEDUP, GOAL_SEARCH_P95_MS, MEMORY_TOLERANCE = 3.0, 50.0, 0.05
Payload = dict[str, Any]  # keyword arguments of httpx.AsyncClient.post
Send = Callable[[int], Awaitable[Any]]  # request number -> the response


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ what is served


@dataclass(frozen=True)
class Served:
    """The folders the servers load and the data the requests come from."""

    data: Path  # the demo dataset folder
    classifier: Path
    pairs: Path  # the paired dataset's data.csv
    index: Path


def build(work: Path, args: argparse.Namespace) -> Served:
    """The demo classifier and the image index in ``work``, fitted unless already there."""
    from mmfuse.cli.main import main as cli
    from mmfuse.datasets import make_demo_dataset, make_paired_dataset

    served = Served(work / "demo", work / "classifier", work / "pairs" / "data.csv",
                    work / "image_index")  # fmt: skip
    sizes = {key: getattr(args, key) for key in SIZES}
    if (work / "sizes.json").is_file():
        if json.loads((work / "sizes.json").read_text()) != sizes:
            raise SystemExit(f"--work {work} holds models built with other sizes "
                             f"({(work / 'sizes.json').read_text()}); give an empty folder")
        return served
    common = ["--epochs", str(args.epochs), "--dim", str(args.dim), "--threads", str(args.threads),
              "--quiet", "--no-cache" if args.pretrained else "--no-pretrained"]  # fmt: skip
    log(f"fitting the classifier on {args.rows} demo records")
    make_demo_dataset(served.data, n=args.rows, seed=0)
    _cli(cli, ["fit", str(served.data), "--target", "label", "--features", FEATURES,
               "--preset", "none", "--out", str(served.classifier), *common])  # fmt: skip
    log(f"fitting the retrieval model on {args.items} images x 2 captions, indexing the images")
    make_paired_dataset(served.pairs.parent, n_items=args.items, captions_per_item=2, seed=4)
    _cli(cli, ["fit", str(served.pairs), "--task", "retrieval", "--pair", "image,caption",
               "--out", str(work / "retrieval"), *common])  # fmt: skip
    _cli(cli, ["index", str(work / "retrieval"), str(served.pairs), "--column", "image",
               "--out", str(served.index), "--quiet"])  # fmt: skip
    (work / "sizes.json").write_text(json.dumps(sizes))
    return served


def _cli(cli: Callable[[list[str]], int], argv: list[str]) -> None:
    """``mmfuse ARGV`` in this process, its report on stderr (stdout is for the JSON)."""
    with contextlib.redirect_stdout(sys.stderr):
        code = cli(argv)
    if code != 0:
        raise SystemExit(f"mmfuse {' '.join(argv)} failed")


def predict_payloads(served: Served) -> list[Payload]:
    """One multipart request per demo record with an image: the file, its review and income."""
    import pandas as pd

    table = pd.read_csv(served.data / "data.csv", keep_default_na=False)
    payloads = []
    for _, row in table[table["image"] != ""].iterrows():
        path = served.data / row["image"]
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        fields = {"review": str(row["review"]), "income": str(row["income"])}
        payloads.append({"files": {"image": (path.name, path.read_bytes(), kind)}, "data": fields})
    return payloads


def search_payloads(served: Served) -> list[Payload]:
    """One text search (k=10) per distinct caption of the paired dataset."""
    import pandas as pd

    captions = pd.read_csv(served.pairs)["caption"].drop_duplicates()
    return [{"data": {"query": str(c), "k": "10"}} for c in captions]


# ------------------------------------------------------------------------------ the servers


@dataclass
class Server:
    """A running ``mmfuse serve`` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def rss_bytes(self) -> int | None:
        """The server's resident memory (None where there is no /proc)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def start_server(
    served: Served, max_batch: int, args: argparse.Namespace, work: Path
) -> Iterator[Server]:
    """``mmfuse serve`` on a free port of 127.0.0.1; stopped (SIGINT, else killed) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "mmfuse.cli.main", "serve", str(served.classifier),
               "--index", str(served.index), "--port", str(port), "--max-batch", str(max_batch),
               "--batch-wait-ms", str(args.batch_wait_ms),
               "--threads", str(args.threads)]  # fmt: skip
    log_path = work / f"server-max-batch-{max_batch}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Server(process, f"http://127.0.0.1:{port}", log_path)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_healthy(client: Any, server: Server, timeout_s: float = 180.0) -> None:
    """Returns once the server answers /health; stops with its log if it exits or times out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited ({server.process.returncode}):\n"
                             f"{server.log_path.read_text()}")  # fmt: skip
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(f"{server.url}/health")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise SystemExit(f"the server did not answer /health within {timeout_s:.0f} s:\n"
                     f"{server.log_path.read_text()}")  # fmt: skip


async def batch_totals(client: Any, server: Server) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram, every model and index together."""
    text = (await client.get(f"{server.url}/metrics")).text
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for part in totals:
            if line.startswith(f"mmfuse_batch_size_{part}{{"):
                totals[part] += float(line.rsplit(" ", 1)[1])
    return totals["sum"], totals["count"]


# ------------------------------------------------------------------------------ the load


@dataclass
class Load:
    """What one bounded run of requests measured."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # status (or exception) -> count
    seconds: float = 0.0
    client_cpu_s: float = 0.0  # this process's CPU time meanwhile

    @property
    def answered(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    def summary(self, concurrency: int) -> dict[str, Any]:
        ms = np.asarray(self.latencies_ms)
        p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
        return {
            "concurrency": concurrency, "requests": self.answered,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(len(ms) / self.seconds, 2) if self.seconds else None,
            "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
            "p99_ms": round(float(p99), 2),
            "mean_ms": round(float(ms.mean()), 2) if len(ms) else None,
            "errors": sum(self.errors.values()), "error_statuses": self.errors,
            "client_cpu_s": round(self.client_cpu_s, 3),
        }  # fmt: skip


async def drive(
    send: Send, total: int, concurrency: int, on_answer: Callable[[int], None] | None = None
) -> Load:
    """``concurrency`` clients send requests 0..total-1, each taking the next number, until all
    are answered; ``on_answer(n)`` runs after the n-th answer."""
    load, numbers = Load(), iter(range(total))

    async def client() -> None:
        for number in numbers:
            begun = time.perf_counter()
            try:
                status: int | str = (await send(number)).status_code
            except Exception as err:  # a refused connection or a timeout counts as an error
                status = type(err).__name__
            if status == 200:
                load.latencies_ms.append(1000 * (time.perf_counter() - begun))
            else:
                load.errors[str(status)] = load.errors.get(str(status), 0) + 1
            if on_answer is not None:
                on_answer(load.answered)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    load.seconds, load.client_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return load


def sender(
    client: Any, server: Server, path: str, payloads: list[Payload], offset: int = 0
) -> Send:
    """Request n posts payload (n + offset) mod len(payloads) to ``path``."""

    def send(number: int) -> Awaitable[Any]:
        return client.post(f"{server.url}{path}", **payloads[(number + offset) % len(payloads)])

    return send


async def level(
    client: Any, server: Server, send: Send, total: int, concurrency: int
) -> dict[str, Any]:
    """One concurrency level: ``WARM_UP`` requests or ``concurrency`` (more of the two) that
    are not counted, then ``total`` measured ones."""
    await drive(send, max(concurrency, WARM_UP), concurrency)
    before = await batch_totals(client, server)
    result = (await drive(send, total, concurrency)).summary(concurrency)
    after = await batch_totals(client, server)
    batches = after[1] - before[1]
    result["mean_batch_size"] = round((after[0] - before[0]) / batches, 2) if batches else None
    return result


async def memory_run(
    server: Server, predict: Send, search: Send, total: int, samples: int = 20
) -> dict[str, Any]:
    """The server's RSS over ``total`` requests (predict and search alternating, 8 clients)."""
    every = max(total // samples, 1)
    start, taken = server.rss_bytes(), []

    def sample(answered: int) -> None:
        rss = server.rss_bytes() if answered % every == 0 else None
        if rss is not None:
            taken.append((answered, rss))

    def send(number: int) -> Awaitable[Any]:
        return (predict if number % 2 == 0 else search)(number // 2)

    load = await drive(send, total, 8, sample)
    out = {key: load.summary(8)[key] for key in ("requests", "errors", "error_statuses")}
    if start is None or not taken:
        return {**out, "flat": None, "note": "no /proc/PID/status here: RSS not measured"}
    return {**out, **rss_summary(start, taken)}


def rss_summary(start: int, samples: list[tuple[int, int]]) -> dict[str, Any]:
    """Start, warm (after a tenth of the run), end and max RSS in MiB; the slope from warm on;
    whether it stayed flat."""
    warm_at = max(len(samples) // 10, 1) - 1
    warm, end = samples[warm_at][1], samples[-1][1]
    rest = samples[warm_at:]
    x = np.array([n for n, _ in rest], dtype=float)
    y = np.array([r for _, r in rest], dtype=float) / MiB
    slope = float(np.polyfit(x, y, 1)[0]) * 1000 if len(rest) > 1 else 0.0
    return {
        "start_mib": round(start / MiB, 1), "warm_mib": round(warm / MiB, 1),
        "warm_after_requests": samples[warm_at][0], "end_mib": round(end / MiB, 1),
        "max_mib": round(max(r for _, r in samples) / MiB, 1), "slope_mib_per_1k": round(slope, 3),
        "samples_mib": {str(n): round(r / MiB, 1) for n, r in samples},
        "flat": end - warm <= max(MEMORY_TOLERANCE * warm, 20 * MiB),
    }  # fmt: skip


async def load_test(served: Served, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Both servers at every concurrency level, the search levels, then the memory run."""
    import httpx

    predicts, searches = predict_payloads(served), search_payloads(served)
    room = max(args.concurrency) + 8
    limits = httpx.Limits(max_connections=room, max_keepalive_connections=room)
    batching, one_by_one = start_server(served, 32, args, work), start_server(served, 1, args, work)
    with batching as batched, one_by_one as single:
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            await asyncio.gather(wait_healthy(client, batched), wait_healthy(client, single))
            log("both servers are up")
            sides = {"batched": batched, "unbatched": single}
            predict: dict[str, dict[str, Any]] = {side: {} for side in sides}
            search: dict[str, Any] = {}
            for c in args.concurrency:
                for side, server in sides.items():
                    send = sender(client, server, "/v1/predict", predicts)
                    predict[side][str(c)] = await level(client, server, send, args.requests, c)
                send = sender(client, batched, "/v1/search", searches)
                search[str(c)] = await level(client, batched, send, args.requests, c)
                log(f"{c} clients: predict {predict['batched'][str(c)]['requests_per_s']} req/s "
                    f"batched, {predict['unbatched'][str(c)]['requests_per_s']} unbatched; "
                    f"search p95 {search[str(c)]['p95_ms']} ms")  # fmt: skip
            log(f"memory run: {args.memory_requests} requests")
            memory = await memory_run(batched, sender(client, batched, "/v1/predict", predicts, 7),
                                      sender(client, batched, "/v1/search", searches, 3),
                                      args.memory_requests)  # fmt: skip
    return {"predict": predict, "search": search, "memory": memory}


# ------------------------------------------------------------------------------ ONNX vs eager


def onnx_vs_eager(served: Served, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """ms per record of the same prepared records in PyTorch eager and in ONNX Runtime."""
    import pandas as pd

    from mmfuse.estimators.io import load
    from mmfuse.export import OnnxModel, export_onnx, reference_outputs

    log("exporting the classifier to ONNX")
    began = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        report = export_onnx(served.classifier, work / "onnx" / "classifier.onnx", data=served.data)
    export_s = time.perf_counter() - began
    onnx_model = OnnxModel(report.onnx_path, num_threads=args.threads)
    table = pd.read_csv(served.data / "data.csv").head(args.onnx_records)
    records = onnx_model.prepare(table, base_dir=served.data)  # the graph's inputs
    fitted = load(served.classifier, device="cpu", verbose=False).fitted_model
    networks = {i.modality: i.backbone for i in report.inputs if i.form == "prepared"}
    sides: dict[str, Callable[[Any], np.ndarray]] = {
        "eager": lambda chunk: reference_outputs(
            dataclasses.replace(fitted, batch_size=len(chunk)), chunk, networks),
        "onnx": lambda chunk: onnx_model.predict(chunk.inputs, chunk.mask, batch_size=len(chunk)),
    }  # fmt: skip
    out: dict[str, Any] = {
        "records": len(records), "export_s": round(export_s, 2),
        "graph_mb": round(report.size_bytes / 1e6, 2), "networks_in_graph": networks,
        "networks_outside": report.outside,  # frozen modality -> why its network is not inside
        "export_parity": report.parity.to_dict(),
    }  # fmt: skip
    worst = 0.0
    for batch in (1, 32):
        timings, worst_here = time_sides(sides, records, batch, args.onnx_repeats)
        out[f"batch_{batch}"], worst = timings, max(worst, worst_here)
    out["max_abs_diff"] = worst
    return out


def time_sides(
    sides: dict[str, Callable[[Any], np.ndarray]], records: Any, batch: int, repeats: int
) -> tuple[dict[str, Any], float]:
    """Median ms per record of each side over ``repeats`` interleaved passes in chunks of
    ``batch``, and the largest difference between the sides' outputs."""
    from mmfuse.data.preprocess import Encoded

    def take(i: int) -> Encoded:
        part = slice(i, i + batch)
        inputs = {m: x[part] for m, x in records.inputs.items()}
        return Encoded(inputs, {m: v[part] for m, v in records.mask.items()}, records.rows[part])

    chunks = [take(i) for i in range(0, len(records), batch)]
    for run in sides.values():
        run(chunks[0])  # warm-up: weights loaded, kernels chosen
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, run in sides.items():
            began = time.perf_counter()
            outputs[name] = np.concatenate([run(chunk) for chunk in chunks])
            times[name].append(1000 * (time.perf_counter() - began) / len(records))
    ms = {name: statistics.median(t) for name, t in times.items()}
    diff = float(np.abs(outputs["eager"].astype(np.float64) - outputs["onnx"]).max())
    timings = {"eager_ms_per_record": round(ms["eager"], 4),
               "onnx_ms_per_record": round(ms["onnx"], 4),
               "onnx_speedup": round(ms["eager"] / ms["onnx"], 2)}  # fmt: skip
    return timings, diff


# ------------------------------------------------------------------------------ the report


def machine() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0], "torch": torch.__version__,
            "loadavg_before": [round(v, 2) for v in os.getloadavg()]}  # fmt: skip


def speedup(predict: dict[str, dict[str, Any]], concurrency: str) -> float | None:
    """Batched over one-at-a-time requests/s at ``concurrency`` clients (None: not run)."""
    if concurrency not in predict["batched"]:
        return None
    fast, slow = predict["batched"][concurrency], predict["unbatched"][concurrency]
    if not fast["requests_per_s"] or not slow["requests_per_s"]:
        return None
    return round(fast["requests_per_s"] / slow["requests_per_s"], 2)


def goals(result: dict[str, Any]) -> dict[str, bool | None]:
    """Which goals this run met (None: the level it needs was not run)."""
    gain, alone = result["speedup_at_32"], result["search"].get("1")
    return {
        "batching_3x": None if gain is None else gain >= GOAL_SPEEDUP,
        "search_p95_under_50ms": None if alone is None else alone["p95_ms"] < GOAL_SEARCH_P95_MS,
        "memory_flat": result["memory"]["flat"],
    }  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--requests", type=int, default=400, help="measured requests per level (default: 400)")
    add("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="clients of each level")
    add("--memory-requests", type=int, default=10_000, help="requests of the memory run")
    add("--threads", type=int, default=2, help="threads of each server, of the fits and of ONNX")
    add("--batch-wait-ms", type=float, default=5.0, help="the servers' --batch-wait-ms")
    add("--rows", type=int, default=400, help="demo records (the classifier's data and requests)")
    add("--items", type=int, default=200, help="images of the paired dataset (the index)")
    add("--epochs", type=int, default=3, help="epochs of both fits")
    add("--dim", type=int, default=128, help="--dim of both models")
    add("--onnx-records", type=int, default=256, help="records of the ONNX vs eager comparison")
    add("--onnx-repeats", type=int, default=3, help="timed passes per side and batch size")
    add("--pretrained", action="store_true", default=None,
        help="the packaged pretrained encoders (default: from scratch unless $MMFUSE_PRETRAINED=1)")
    add("--work", type=Path, help="folder for data and models, reused when it holds them")
    add("--out", type=Path, help="also write the JSON object to this file")
    args = parse_with_quick(parser, QUICK, argv)
    if args.pretrained is None:
        args.pretrained = os.environ.get("MMFUSE_PRETRAINED", "").strip() == "1"
    counts = (args.requests, args.memory_requests, args.onnx_records, args.onnx_repeats,
              args.threads)  # fmt: skip
    if min(counts) < 1 or min(args.concurrency) < 1:
        parser.error("--requests, --memory-requests, --onnx-records, --onnx-repeats, --threads "
                     "and --concurrency must be at least 1")  # fmt: skip
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.pretrained:
        os.environ["MMFUSE_PRETRAINED"] = "1"  # the fits run in this process
    from mmfuse.training.device import set_threads

    set_threads(args.threads)
    began = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "serve_load", "machine": machine(),
                              "config": {k: str(v) if isinstance(v, Path) else v
                                         for k, v in vars(args).items()}}  # fmt: skip
    with contextlib.ExitStack() as stack:
        work = args.work or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="mmfuse-serve-load-")))
        work.mkdir(parents=True, exist_ok=True)
        served = build(work, args)
        result.update(asyncio.run(load_test(served, args, work)))
        result["speedup_at_32"] = speedup(result["predict"], "32")
        result["onnx_vs_eager"] = onnx_vs_eager(served, args, work)
    result["goals"] = goals(result)
    result["machine"]["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    result["total_s"] = round(time.perf_counter() - began, 1)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
