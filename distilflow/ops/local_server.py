"""A server process on 127.0.0.1 (the MLflow UI, MLflow's scoring server) started for a check or a
benchmark, waited for, and stopped: one place for the free port, the readiness poll and the cleanup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distilflow.errors import DistilflowError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def local_server(command: list[str], ready_path: str, port: int, env: dict[str, str] | None = None,
                 timeout_s: float = 180) -> Iterator[str]:
    """Run `command` (which serves on `port`) until `ready_path` answers; yield the base URL; stop it.
    The environment's bin folder goes first on PATH: `mlflow models serve` starts uvicorn from PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    process = subprocess.Popen(command, env={**os.environ, **(env or {}), "PATH": path},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(url + ready_path, timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    output = process.stdout.read()[-3000:]
                    raise DistilflowError(f"{' '.join(command[:4])} did not start on {url}: {output}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def scoring_server_command(model_uri: str, port: int) -> list[str]:
    """MLflow's standard scoring server for a registered model, in this environment (no new virtualenv)."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
            "-h", "127.0.0.1", "-p", str(port)]
