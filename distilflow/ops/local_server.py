"""A server process on 127.0.0.1 (the MLflow UI, MLflow's scoring server) started for a check or a
benchmark, waited for, and stopped: one place for the free port, the readiness poll and the cleanup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distilflow.errors import DistilflowError


# MLflow's tracking server also starts its job runners (five processes, each importing MLflow: ~15 CPU-seconds
# before it answers) for GenAI scorers and trace roll-ups, which distilflow never submits.
TRACKING_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def local_server(command: list[str], ready_path: str, port: int, env: dict[str, str] | None = None,
                 timeout_s: float = 180) -> Iterator[str]:
    """Run `command` (which serves on `port`) until `ready_path` answers; yield the base URL; stop it.
    The environment's bin folder goes first on PATH: `mlflow models serve` starts uvicorn from PATH.
    Its output goes to a temporary file (a pipe nobody reads would block a chatty server), shown if it fails."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, env={**os.environ, **(env or {}), "PATH": path},
                                   stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_until_ready(process, url + ready_path, timeout_s, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_ready(process: subprocess.Popen, ready_url: str, timeout_s: float, log) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(ready_url, timeout=2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.seek(0)
                raise DistilflowError(f"{' '.join(process.args[:4])} did not answer {ready_url}: "
                                      f"{log.read()[-3000:]}") from None
            time.sleep(0.5)


def scoring_server_command(model_uri: str, port: int) -> list[str]:
    """MLflow's standard scoring server for a registered model, in this environment (no new virtualenv)."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port)]
