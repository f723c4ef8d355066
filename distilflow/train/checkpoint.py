"""Atomic training checkpoints: everything needed to continue a run exactly.

A checkpoint is one file `step_<N>.pt` holding model, optimizer, scheduler, every RNG state and the
data position. It is written to a temporary name and renamed, so a crash mid-write never leaves a
partial checkpoint under a real name; a truncated or foreign file is reported, not half-loaded.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distilflow.base.files import write_atomically
from distilflow.errors import DistilflowError, is_disk_full

CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")
PARTIAL_NAME = re.compile(r"^\.step_(\d+)\.pt\.partial$")
NEARLY_FULL_BYTES = 16 * 2**20
FORMAT_VERSION = 2  # 2: RNG states of every process, data position = the step number


def capture_rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()  # this process's GPU (one GPU per process)
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def save_checkpoint(directory: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    final = directory / f"step_{step:07d}.pt"
    content = {"format_version": FORMAT_VERSION, "step": step, **state}

    def write(partial: Path) -> None:
        try:
            torch.save(content, partial)
        except BaseException as error:
            if _is_disk_full(error, directory):  # checked while the partial file still takes the space
                raise DistilflowError(
                    f"no space left on the device of '{directory}' while checkpointing step {step}: free some "
                    "space (or point paths.checkpoints elsewhere), then run again with --resume"
                ) from None
            raise

    # Never half a checkpoint under a real name (a full disk, Ctrl-C): the partial file is removed.
    write_atomically(final, write, partial=directory / f".step_{step:07d}.pt.partial")
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink()
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT_NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        # weights_only=False: the file holds RNG states and optimizer state written by this program.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated zip, a random file, a pickle error: all mean "corrupt"
        raise DistilflowError(
            f"checkpoint '{path}' is corrupt or unreadable ({type(error).__name__}): delete it to resume "
            "from the one before, or pass --restart to start over"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise DistilflowError(f"checkpoint '{path}' was not written by distilflow: pass --restart")
    return state


def is_current_format(state: dict[str, Any]) -> bool:
    return state.get("format_version") == FORMAT_VERSION


def checkpoint_to_resume(directory: Path, resume: bool, restart: bool) -> Path | None:
    """The checkpoint a run should continue from; refuses to silently drop or silently reuse one."""
    existing = list_checkpoints(directory)
    if restart or not existing:
        return None
    if not resume:
        raise DistilflowError(
            f"'{directory}' holds a checkpoint ({existing[-1].name}): pass --resume to continue it "
            "or --restart to start over"
        )
    return existing[-1]


def resume_state(directory: Path, run_key: str, resume: bool, restart: bool, discard_stale: bool,
                 clear: bool = True) -> dict[str, Any] | None:
    """The state a run continues from (None: it starts fresh, old checkpoints cleared when `clear`). One from
    other params or data (another run_key, an older distilflow) is refused, or dropped with `discard_stale`."""
    latest = checkpoint_to_resume(directory, resume, restart)
    state = load_checkpoint(latest) if latest is not None else None
    stale = state is not None and (state.get("run_key") != run_key or not is_current_format(state))
    if stale and not discard_stale:
        raise DistilflowError(f"checkpoint '{latest}' belongs to a run with other params or data (or an older "
                              "distilflow): pass --restart to start over, or restore the params it was made with")
    if state is None or stale:
        if clear:
            clear_checkpoints(directory)
        return None
    return state


def clear_checkpoints(directory: Path) -> None:
    """Our checkpoints and any half-written ones a killed process left; nothing else in the folder."""
    for path in list_checkpoints(directory):
        path.unlink()
    if directory.is_dir():
        for path in directory.iterdir():
            if PARTIAL_NAME.match(path.name):
                path.unlink()


def _is_disk_full(error: BaseException, directory: Path) -> bool:
    """ENOSPC, or a failed write on a device with (almost) no space left: torch.save's zip writer reports
    a full disk only as "iostream error" / "unexpected pos"."""
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        return False
    return is_disk_full(error) or shutil.disk_usage(directory).free < NEARLY_FULL_BYTES
