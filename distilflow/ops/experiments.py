"""DVC experiments: one per variant of a sweep (`dvc exp run --temp`), kept as a git ref under refs/exps with its
params, dvc.lock and metrics, its outputs in the DVC cache; the working tree is never touched.

Each variant runs in a temporary copy of the project under .dvc/tmp. Its stages still log into the project's
MLflow store and share the teacher's GLUE cache: DVC tells a stage the project's folder (DVC_ROOT) and the
experiment it runs for (DVC_EXP_NAME), and distilflow resolves those relative paths there (base/stage_env.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from distilflow.errors import DistilflowError

DVC = [sys.executable, "-m", "dvc"]
CACHE = Path(".dvc/cache/files/md5")


@dataclass
class Outcome:
    name: str
    ok: bool
    error: str  # its one-line reason when not ok
    log_file: Path


def require_committed(dvc_files: list[Path]) -> None:
    """An experiment starts from the last commit: the pins (data/*.dvc) of what it reads must be in it, or its
    stages find no data in their temporary copy. One line before any work when they are not."""
    head = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        raise DistilflowError("this project has no git commit yet, and a DVC experiment starts from one: "
                              "`git add -A && git commit -m 'the project'`, then run it again")
    listed = subprocess.run(["git", "ls-files", "--", *map(str, dvc_files)], capture_output=True, text=True).stdout
    missing = [str(path) for path in dvc_files if str(path) not in listed.split()]
    if missing:
        raise DistilflowError(f"{', '.join(missing)} not committed: a DVC experiment starts from the last commit and "
                              f"would find no data; `git add {' '.join(missing)} && git commit`, then run it again")


def run(name: str, overrides: list[str], log_file: Path, targets: list[str] | None = None,
        env: dict[str, str] | None = None) -> Outcome:
    """`dvc exp run --temp --name NAME -S key=value ... [TARGETS]` in the foreground, its output in `log_file`.
    The stages a variant does not change are restored from DVC's run-cache, not run again."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [*DVC, "exp", "run", "--temp", "--name", name, *[arg for o in overrides for arg in ("-S", o)],
               *(targets or [])]
    # The stages' commands (`distilflow ...`) and DVC itself come from this environment's bin folder
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with open(log_file, "wb") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, **_git_identity(), **(env or {}), "PATH": path})
    if done.returncode == 0 and name in finished():
        return Outcome(name, True, "", log_file)
    return Outcome(name, False, _reason(log_file.read_text(errors="replace")), log_file)


def _git_identity() -> dict[str, str]:
    """DVC keeps the uncommitted changes an experiment starts from (after `make run`: dvc.lock, metrics/) as a git
    commit of its own refs. On a machine where git has no user yet (a new container), that fails ("Git user name and
    email must be configured"): those commits are then signed as distilflow. The user's git config is not touched,
    and a configured user or GIT_AUTHOR_* / GIT_COMMITTER_* wins."""
    identity = {}
    for field, fallback in (("name", "distilflow"), ("email", "distilflow@localhost")):
        configured = subprocess.run(["git", "config", f"user.{field}"], capture_output=True).returncode == 0
        for role in ("AUTHOR", "COMMITTER"):
            if not configured and not os.environ.get(f"GIT_{role}_{field.upper()}"):
                identity[f"GIT_{role}_{field.upper()}"] = fallback
    return identity


def stage_verdicts(output: str) -> dict[str, str]:
    """What DVC did with each stage of an experiment, from its output: ran, restored from its run-cache, or
    unchanged (the words the pipeline's report uses for a stage run in the working tree)."""
    verdicts = {}
    for line in output.splitlines():
        if match := re.search(r"Running stage '([^']+)'", line):
            verdicts[match.group(1)] = "ran"
        elif match := re.search(r"Stage '([^']+)' is cached - skipping run", line):
            verdicts[match.group(1)] = "restored from DVC's run-cache"
        elif match := re.search(r"Stage '([^']+)' didn't change, skipping", line):
            verdicts[match.group(1)] = "unchanged, skipped"
    return verdicts


def _reason(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("error:")]  # a stage's one line (distilflow's)
    theirs = [line for line in lines if line.startswith("ERROR")]
    return (ours or theirs or lines or ["no output"])[-1][:300]


def refs() -> dict[str, str]:
    """name -> git ref of every finished experiment of this repository."""
    listed = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], capture_output=True,
                            text=True).stdout.split()
    return {ref.rsplit("/", 1)[-1]: ref for ref in listed if ref.count("/") >= 4}


def finished() -> set[str]:
    return set(refs())


def read(name: str, path: str) -> str | None:
    """A file (dvc.lock, params.yaml, metrics/glue.json) as experiment `name` left it."""
    ref = refs().get(name)
    if ref is None:
        return None
    shown = subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def read_json(name: str, path: str) -> dict:
    text = read(name, path)
    return json.loads(text) if text else {}


def lock_outputs(lock_text: str | None) -> dict[str, str]:
    """output path -> the md5 a dvc.lock recorded for it (a folder: its .dir); outputs not cached have none."""
    lock = yaml.safe_load(lock_text or "{}") or {}
    return {out["path"]: out["md5"] for stage in lock.get("stages", {}).values() for out in stage.get("outs", [])
            if "md5" in out}


def output_md5(name: str, path: str) -> str | None:
    """The md5 DVC recorded for output `path` (a folder: its .dir) in experiment `name`'s dvc.lock."""
    return lock_outputs(read(name, "dvc.lock")).get(path)


def materialize(name: str, path: str, destination: Path) -> Path:
    """Output `path` of experiment `name`, copied out of the DVC cache into `destination` (the working tree's
    own `path` is left as it is)."""
    md5 = output_md5(name, path)
    if md5 is None:
        raise DistilflowError(f"experiment {name} has no output {path} in its dvc.lock: run it again")
    files = json.loads(_cached(md5).read_text()) if md5.endswith(".dir") else [{"relpath": "", "md5": md5}]
    for entry in files:
        target = destination / entry["relpath"] if entry["relpath"] else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_cached(entry["md5"]), target)
    return destination


def _cached(md5: str) -> Path:
    found = CACHE / md5[:2] / md5[2:]
    if not found.is_file():
        raise DistilflowError(f"{found} is not in the DVC cache: `dvc pull`, or run the experiment again")
    return found


def remove(names: list[str]) -> None:
    """The experiments' refs; their outputs then go at the next `dvc gc --all-experiments`."""
    if names:
        subprocess.run([*DVC, "exp", "remove", *names], check=True, capture_output=True, text=True)


def collect_garbage() -> str:
    """Cached outputs no longer referenced by the working tree, any commit, branch or tag, or a remaining
    experiment: only what removed experiments alone used (nothing else goes, the user's history included)."""
    done = subprocess.run([*DVC, "gc", "--workspace", "--all-commits", "--all-branches", "--all-tags",
                           "--all-experiments", "--force"], capture_output=True, text=True)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else "nothing to collect"
