"""What a bench result file says about where it came from: the commit its code started from, whether the package
had uncommitted changes then, the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def provenance() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "distilflow"], capture_output=True, text=True, cwd=ROOT)
    return {"commit": commit.stdout.strip(), "code_changed_since_commit": bool(dirty.stdout.strip()),
            "machine": f"{platform.platform()} ({os.cpu_count()} cores)"}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
