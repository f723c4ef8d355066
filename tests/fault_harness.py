"""Fault injection: every stage killed (SIGKILL) at random moments, then rerun, must end where an
uninterrupted run ends. Run by tests/test_fault_injection.py:

    python tests/fault_harness.py WORKDIR SEED KILLS_PER_STAGE   # prints a JSON summary

The heavy imports happen once here; each stage then runs in a forked child (as a separate process
would, without paying the start-up again), which the parent SIGKILLs after a random delay.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import mlflow  # noqa: F401

# Imported before any fork, and nothing computed with torch in this process (a forked child must not
# inherit busy thread pools).
import distilflow.jobs.distill  # noqa: F401
import distilflow.jobs.glue_report  # noqa: F401
import distilflow.jobs.glue_task  # noqa: F401
import distilflow.jobs.prepare  # noqa: F401
import distilflow.jobs.promote  # noqa: F401
import distilflow.jobs.register  # noqa: F401
import distilflow.jobs.teacher  # noqa: F401
from distilflow.cli import main

# What the pipeline runs, in order (dvc.yaml's commands, then the registry step).
STAGES = [["prepare"], ["teacher", "--resume", "--discard-stale"], ["distill", "--resume", "--discard-stale"],
          ["glue-task", "rte"], ["glue-report"], ["register"]]


def run_stage(project: Path, command: list[str], kill_after: float | None = None) -> tuple[int | None, float]:
    """Run `distilflow <command>` in a forked child in `project`; SIGKILL it after `kill_after` seconds.
    Returns (exit code, or None when killed; seconds it ran)."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: the CLI as a stage process runs it
        os.chdir(project)
        sys.argv = ["distilflow", *command, "--params", "params.yaml"]
        log = os.open(project / "stages.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        try:
            main()
        except SystemExit as exit_:
            os._exit(exit_.code if isinstance(exit_.code, int) else 1)
        except BaseException:
            os._exit(1)
        os._exit(0)
    if kill_after is not None:
        deadline = started + kill_after
        while time.perf_counter() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), time.perf_counter() - started
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return (None if code == -signal.SIGKILL else code), time.perf_counter() - started


def main_harness(workdir: Path, seed: int, kills_per_stage: int) -> dict:
    rng = random.Random(seed)
    summary: dict = {"reference": {}, "kills": [], "reruns": {}}
    durations = {}
    for command in STAGES:  # the uninterrupted run
        code, seconds = run_stage(workdir / "reference", command)
        summary["reference"][command[0]] = code
        durations[command[0]] = seconds
    for command in STAGES:  # the same, each stage killed at random moments first
        for _ in range(kills_per_stage):
            delay = rng.uniform(0.05, durations[command[0]])
            code, seconds = run_stage(workdir / "faulted", command, kill_after=delay)
            summary["kills"].append({"stage": command[0], "after_s": round(delay, 2), "killed": code is None,
                                     "exit_code": code})
        code, _ = run_stage(workdir / "faulted", command)
        summary["reruns"][command[0]] = code
    return summary


if __name__ == "__main__":
    result = main_harness(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(result))
