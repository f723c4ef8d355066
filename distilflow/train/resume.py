"""What a training job does with checkpoints an earlier run left, and which MLflow run it continues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distilflow.base.files import write_text
from distilflow.errors import DistilflowError
from distilflow.train.checkpoint import list_checkpoints

RUN_ID_FILE = "mlflow_run_id"


@dataclass(frozen=True)
class ResumePolicy:
    """What to do with checkpoints left by an earlier run (see Trainer.start)."""

    resume: bool = False
    restart: bool = False
    discard_stale: bool = False

    def __post_init__(self) -> None:
        if self.resume and self.restart:
            raise DistilflowError("--resume and --restart contradict each other: pass one of them")


def remember_run_id(checkpoints: Path, run_id: str | None, run_key: str) -> None:
    if run_id is None:  # untracked
        return
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_text(checkpoints / RUN_ID_FILE, f"{run_id} {run_key}")


def resumable_run_id(checkpoints: Path, policy: ResumePolicy, run_key: str) -> str | None:
    """With --resume, continue the MLflow run that wrote the checkpoints (same params and data), so its
    curves stay one run."""
    path = checkpoints / RUN_ID_FILE
    if not (policy.resume and path.is_file() and list_checkpoints(checkpoints)):
        return None
    run_id, _, key = path.read_text().strip().partition(" ")
    return run_id if key == run_key else None
