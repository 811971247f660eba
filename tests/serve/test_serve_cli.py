"""``mmfuse serve`` from the command line: its refusals (exit 2 with the fix), and a real
server process on a free port that answers, then stops on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from mmfuse.cli.main import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("args", "words"), [
    ([], "nothing to serve: give a model directory and/or --index INDEX_DIR"),
    (["{classifier}", "--max-batch", "0"], "--max-batch must be at least 1"),
    (["{classifier}", "--port", "70000"], "--port must be between 1 and 65535"),
    (["{classifier}", "--max-request-mb", "0"], "--max-request-mb must be more than 0"),
    (["{classifier}", "--api-key-env", "MMFUSE_TEST_UNSET_KEY"],
     "the environment variable $MMFUSE_TEST_UNSET_KEY is not set or empty"),
    (["{index}"], "is an index directory: pass it with --index"),
    (["--index", "{classifier}"], "is a model directory, not an index"),
    (["{data}"], "config.json"),
])
def test_refusals_exit_2_with_the_reason(served, capsys, monkeypatch, args, words) -> None:
    monkeypatch.delenv("MMFUSE_TEST_UNSET_KEY", raising=False)
    paths = {"classifier": served.classifier, "index": served.index, "data": served.data}
    port = [] if "--port" in args else ["--port", str(free_port())]
    argv = ["serve", *[a.format(**paths) for a in args], *port]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_port_in_use_is_named(served, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(served.classifier), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_served_process_answers_and_stops_on_ctrl_c(served) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmfuse", "serve", str(served.classifier), "--index", str(served.index),
         "--port", str(port), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up within 120 s"
            time.sleep(0.3)
        assert httpx.get(f"{base}/v1/models").json()["indexes"][0]["name"] == "image_index"
        got = httpx.post(f"{base}/v1/predict", json={"record": {"review": "lovely"}}).json()
        assert got["model"] == "classifier" and set(got["probabilities"]) == {"negative", "positive"}
        hits = httpx.post(f"{base}/v1/search", data={"query": "a small blue square", "k": "2"}).json()
        assert len(hits["results"]) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"page:  http://127.0.0.1:{port}/" in out
    assert "Traceback" not in err
