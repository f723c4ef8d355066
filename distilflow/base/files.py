"""Writing outputs so that a reader (DVC, a later stage, a person) never sees half of one, and so
that distilflow never replaces a folder it did not write."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from distilflow.errors import DistilflowError

LOCKS = Path(tempfile.gettempdir()) / "distilflow-locks"  # one lock file per output path on this machine


def write_atomically(path: Path, write: Callable[[Path], None], partial: Path | None = None) -> Path:
    """Call `write(temporary path)`, flush it to disk, then rename it to `path`. On any failure the
    temporary file is removed and `path` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial or path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_text(text))


def write_json(path: Path, content: Any) -> Path:
    return write_text(path, json.dumps(content, indent=2, default=str))


def replace_folder(output: Path, fill: Callable[[Path], None], marker: str) -> Path:
    """Build the folder in a staging copy with `fill(staging)`, then swap it in for `output`.

    `marker` is the file that says a folder was written by distilflow: `fill` must write it, and an
    existing `output` without it is refused (a paths.* key pointed at a user's folder)."""
    refuse_foreign_folder(output, marker)
    staging = output.with_name(output.name + ".tmp")
    previous = output.with_name(output.name + ".old")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        fill(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not (staging / marker).is_file():
        raise AssertionError(f"the staged folder lacks its marker {marker}")  # a programming error, not input
    shutil.rmtree(previous, ignore_errors=True)
    if output.exists():
        output.rename(previous)
    staging.rename(output)
    shutil.rmtree(previous, ignore_errors=True)
    return output


@contextmanager
def scratch_folder(output: Path) -> Iterator[Path]:
    """A work folder beside `output` (same disk: no copy when its results move in), removed at the end. A
    killed run's leftovers, ours by name, are removed first (the caller holds `output`'s lock)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{output.name}-work-"
    for stale in output.parent.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=output.parent) as work:
        yield Path(work)


def refuse_foreign_folder(folder: Path, marker: str) -> None:
    """distilflow replaces only folders it wrote (they hold `marker`): a paths.* key pointed at a
    user's folder must never delete it."""
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / marker).is_file())):
        raise DistilflowError(
            f"'{folder}' exists and was not written by distilflow (no {marker} in it): point the paths.* key at "
            "a new folder or one distilflow made; nothing was deleted"
        )


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@contextmanager
def exclusive(output: Path, wait_seconds: float = 0.0, enabled: bool = True) -> Iterator[None]:
    """One run at a time per output: a second run on the same folder waits up to `wait_seconds`, then
    refuses in one line (two runs would race on its checkpoints and replace each other's results).
    enabled=False (the other processes of a data-parallel run, which write nothing) takes no lock."""
    if not enabled:
        yield
        return
    from filelock import FileLock, Timeout

    # Kept out of the project tree: a lock file beside an output could land in a folder git or DVC tracks.
    where = str(output.resolve())
    LOCKS.mkdir(parents=True, exist_ok=True)
    lock = FileLock(LOCKS / f"{hashlib.sha256(where.encode()).hexdigest()[:16]}-{output.name}.lock")
    try:
        lock.acquire(timeout=wait_seconds)
    except Timeout:
        raise DistilflowError(f"'{output}' is in use by another distilflow run: wait for it to finish (or stop it), "
                              "or raise orchestration.lock_wait_seconds to wait for it") from None
    try:
        yield
    finally:
        lock.release()
