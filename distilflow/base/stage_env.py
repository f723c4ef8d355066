"""Run-time settings the orchestrator passes to a stage process through its environment.

They change how a stage runs, never what it computes, so they are not params (DVC would otherwise
see a retry as a parameter change): the MLflow run to nest under, the micro-batch split after a CUDA
out-of-memory, and a file where training reports its progress. Also what DVC itself says: the project a
stage belongs to (DVC_ROOT, the user's folder even when a DVC experiment runs the stage in a temporary copy
of it) and the experiment it runs for (DVC_EXP_NAME).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

PARENT_RUN_ENV = "DISTILFLOW_PARENT_RUN_ID"
BATCH_SPLIT_ENV = "DISTILFLOW_BATCH_SPLIT"
PROGRESS_FILE_ENV = "DISTILFLOW_PROGRESS_FILE"
# torchrun arguments, e.g. "--nproc_per_node=8" or "--nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d
# --rdzv_endpoint=host:29500": `head` and `distill` then run data parallel, pipeline stages included.
TORCHRUN_ENV = "DISTILFLOW_TORCHRUN"
EXIT_BAD_INPUT = 2
EXIT_OUT_OF_MEMORY = 3
OUT_OF_MEMORY_MARKER = "error: CUDA out of memory"


def parent_run_id() -> str | None:
    return os.environ.get(PARENT_RUN_ENV) or None


def project_root() -> Path:
    """The user's project folder: where DVC says the stage's repository is (`dvc exp run --temp`, `dvc queue`:
    a copy under .dvc/tmp, which is deleted after), else the working folder. A relative tracking store or
    shared cache is resolved against it, so that an experiment's runs land in the user's one store."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd())


def in_project(path: Path) -> Path:
    """A relative path of the project's (not of a DVC experiment's temporary copy), made absolute."""
    return path if path.is_absolute() else project_root() / path


def dvc_experiment() -> str | None:
    """The DVC experiment this stage runs for (`dvc exp run`), if any."""
    return os.environ.get("DVC_EXP_NAME") or None


def resumable_path(path: Path) -> Path:
    """Where a stage keeps what a killed run resumes from (training checkpoints). For a DVC experiment: in the
    project, one folder per experiment (`artifacts/checkpoints/distill@<experiment>`), not in its temporary copy,
    which goes with the work when the sweep is killed, so that the sweep given again resumes its variants' stages
    where they stopped; experiments running side by side never share one."""
    experiment = dvc_experiment()
    if experiment is None:
        return path
    project_path = in_project(path)
    return project_path.with_name(f"{project_path.name}@{experiment}")


def batch_split() -> int:
    """Split each micro-batch into this many (accumulating as many more): same effective batch, less memory."""
    value = os.environ.get(BATCH_SPLIT_ENV, "1")
    return int(value) if value.isdigit() and int(value) >= 1 else 1


def torchrun_command(argv: list[str]) -> list[str] | None:
    """The command that reruns this one under torchrun, when asked for and not already under it."""
    launcher_args = os.environ.get(TORCHRUN_ENV, "").strip()
    if not launcher_args or "WORLD_SIZE" in os.environ:
        return None
    return [sys.executable, "-m", "torch.distributed.run", *shlex.split(launcher_args), "-m", "distilflow", *argv]


def report_progress(description: str, done: int, total: int) -> None:
    path = os.environ.get(PROGRESS_FILE_ENV)
    if path:
        Path(path).write_text(json.dumps({"description": description, "done": done, "total": total}))


def read_progress(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
