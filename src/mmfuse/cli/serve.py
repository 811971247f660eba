"""``mmfuse serve``: models and indexes over HTTP (FastAPI + uvicorn) until interrupted."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from mmfuse.errors import MmfuseError


def serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL_DIR",
                   help="model directories written by `mmfuse fit` (each served under its folder's name)")
    p.add_argument("--index", action="append", default=[], metavar="INDEX_DIR",
                   help="an index written by `mmfuse index` (repeat for several); its model is loaded too")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--max-request-mb", type=float, default=20.0,
                   help="largest request body in MB; larger ones get 413 (default: 20)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="require the key held in environment variable VAR on /v1/* and /metrics")
    p.add_argument("--max-batch", type=int, default=32,
                   help="most concurrent records run as one batch (default: 32; 1 turns batching off)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to join its batch (default: 5)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take; then 504 (default: 30)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the models (default: all cores)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")


def serve(a: argparse.Namespace) -> int:
    from mmfuse.serve.app import ServeOptions, create_app
    from mmfuse.serve.catalogue import load_catalogue
    from mmfuse.training.device import set_threads

    uvicorn = _require_extra()
    options = ServeOptions(a.max_request_mb, _api_key(a.api_key_env), a.max_batch, a.batch_wait_ms, a.timeout)
    _check(a, options)
    set_threads(a.threads)
    catalogue = load_catalogue(a.models, a.index, a.threads, a.device)
    app = create_app(catalogue, options)
    shown = f"[{a.host}]" if ":" in a.host else a.host
    print(f"serving {len(catalogue.models)} model(s) ({', '.join(catalogue.models)})"
          + (f" and {len(catalogue.indexes)} index(es) ({', '.join(catalogue.indexes)})" if catalogue.indexes else "")
          + f"\n  page:  http://{shown}:{a.port}/\n  API:   http://{shown}:{a.port}/docs"
          + ("\n  API key required on /v1/* and /metrics" if options.api_key else "")
          + "\nCtrl-C stops the server", flush=True)
    if not _loopback(a.host) and not options.api_key:
        print(f"warning: listening on {a.host} without an API key: anyone who can reach this machine "
              "can use the models (pass --api-key-env VAR)", file=sys.stderr)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", timeout_graceful_shutdown=5)
    return 0


def _require_extra() -> object:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise MmfuseError(f"mmfuse serve needs the serve extra ({err.name} is missing): "
                          "pip install 'mmfuse[serve]'") from None
    return uvicorn


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key.strip():
        raise MmfuseError(f"--api-key-env {variable}: the environment variable ${variable} is not set or "
                          f"empty; set it to the key clients must send (e.g. export {variable}=$(openssl rand -hex 24))")
    return key.strip()


def _check(a: argparse.Namespace, options: object) -> None:
    if not 0 < a.port < 65536:
        raise MmfuseError(f"--port must be between 1 and 65535, got {a.port}")
    if not a.max_request_mb > 0:
        raise MmfuseError(f"--max-request-mb must be more than 0, got {a.max_request_mb:g}")
    if a.max_batch < 1:
        raise MmfuseError(f"--max-batch must be at least 1 (1 turns batching off), got {a.max_batch}")
    if not 0 <= a.batch_wait_ms <= 1000:
        raise MmfuseError(f"--batch-wait-ms must be between 0 and 1000, got {a.batch_wait_ms:g}")
    if not a.timeout > 0:
        raise MmfuseError(f"--timeout must be more than 0 seconds, got {a.timeout:g}")
    if not a.models and not a.index:
        raise MmfuseError("nothing to serve: give a model directory and/or --index INDEX_DIR")
    try:
        family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((a.host, a.port))
    except OSError as err:
        raise MmfuseError(f"cannot listen on {a.host}:{a.port}: {err.strerror or err}; "
                          "pick another --port (or stop the program using it)") from None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
