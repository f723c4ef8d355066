"""DVC, driven from Python: pin the inputs, list the stages of dvc.yaml, run one, read the hashes.

dvc.yaml is the one definition of the pipeline's steps; the Prefect flow asks DVC for them here
instead of listing them again. Everything goes through the `dvc` command line (`python -m dvc`),
the interface DVC keeps stable, and runs in the project root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import yaml

from distilflow.base import stage_env
from distilflow.config import DataSourceConfig, VersioningConfig
from distilflow.errors import DistilflowError

DVC = [sys.executable, "-m", "dvc"]
POLL_SECONDS = 2.0


class DvcCommandFailed(DistilflowError):
    """A `dvc` command failed: reported in one line like bad input, but worth a retry (I/O, remotes)."""

    retryable = True


def dvc(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*DVC, *args], capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise DvcCommandFailed(f"`dvc {' '.join(args)}` failed: {_last_error_line(result)}")
    return result


def pin_sources(config: VersioningConfig) -> dict[str, str]:
    """Bring every source under DVC (first time: import; later: update, re-copying only what changed).

    Returns {source name: md5 of its content}, the versions this run uses.
    """
    require_sources(config)
    for name, source in config.sources.items():
        dvc_file = Path(f"{source.path}.dvc")
        if source.hub:
            _pin_hub_snapshot(source)
            continue
        url = _url_from_dvc_file(source)
        if dvc_file.is_file() and _imported_from(dvc_file) == url:
            dvc("update", str(dvc_file))  # re-copies only if the source changed
        else:  # first time, or params now name another source
            if dvc_file.is_file():
                dvc("remove", "--outs", str(dvc_file))  # the old content stays in the DVC cache
            source.path.parent.mkdir(parents=True, exist_ok=True)
            dvc("import-url", url, str(source.path))
    return source_hashes(config)


def require_sources(config: VersioningConfig) -> None:
    """Every local source is there, before a run starts: one line naming what is missing and where."""
    for name, source in config.sources.items():
        if source.hub or "://" in source.url or Path(source.url).exists():
            continue
        raise DistilflowError(
            f"data source {name} not found: versioning.sources.{name}.url is '{source.url}', looked for "
            f"{os.path.abspath(source.url)}: put the data there (a clone expects ../shared beside it) or set that url")


def _url_from_dvc_file(source: DataSourceConfig) -> str:
    """DVC reads a relative import URL from the .dvc file's folder; params give it from the project root."""
    if "://" in source.url or Path(source.url).is_absolute():
        return source.url
    # abspath, not resolve(): a symlinked ../shared keeps the path the committed .dvc files record.
    return os.path.relpath(os.path.abspath(source.url), os.path.abspath(source.path.parent))


def _imported_from(dvc_file: Path) -> str | None:
    deps = yaml.safe_load(dvc_file.read_text()).get("deps") or [{}]
    return deps[0].get("path")


def _pin_hub_snapshot(source: DataSourceConfig) -> None:
    """A Hub repository: download a snapshot into the project, then `dvc add` it."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(source.hub, repo_type=source.hub_type, local_dir=source.path,
                          allow_patterns=source.include)
    except Exception as error:
        raise DistilflowError(f"could not download {source.hub_type} '{source.hub}' from the Hub "
                              f"({str(error).splitlines()[0][:160]}): check the id and the connection") from None
    dvc("add", str(source.path))


def source_hashes(config: VersioningConfig) -> dict[str, str]:
    hashes = {}
    for name, source in config.sources.items():
        dvc_file = Path(f"{source.path}.dvc")
        if dvc_file.is_file():
            hashes[name] = yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]
    return hashes


def output_hashes(paths: dict[str, Path]) -> dict[str, str]:
    """{name: md5} of stage outputs as recorded in dvc.lock (the versions the last reproduction made)."""
    lock_file = Path("dvc.lock")
    if not lock_file.is_file():
        return {}
    recorded = {}
    for stage in yaml.safe_load(lock_file.read_text()).get("stages", {}).values():
        for out in stage.get("outs", []):
            recorded[out["path"]] = out.get("md5", "")
    return {name: recorded[str(path)] for name, path in paths.items() if str(path) in recorded}


def pipeline_stages() -> list[str]:
    """The stages of dvc.yaml (foreach items expanded, e.g. glue@rte), dependencies first."""
    import networkx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(".") as repo:
            position = {stage: index for index, stage in enumerate(repo.index.stages)}
            # Edges point from a stage to the stages it depends on; ties keep the order of dvc.yaml.
            ordered = list(networkx.lexicographical_topological_sort(repo.index.graph.reverse(),
                                                                    key=lambda stage: position[stage]))
    except DvcException as error:
        raise DistilflowError(f"cannot read the DVC pipeline ({str(error).splitlines()[0]}): fix dvc.yaml") from None
    return [stage.addressing for stage in ordered if not stage.is_import and stage.cmd]


@dataclass
class StageOutcome:
    stage: str
    ran: bool  # False: DVC found nothing changed and skipped it, or restored the outputs from its run-cache
    exit_code: int  # the stage command's own exit code (0 when it succeeded or was skipped)
    error: str  # the last error line, for a one-line message
    log_file: Path
    restored: bool = False  # inputs DVC had seen before: their outputs checked out from its run-cache, no run

    @property
    def verdict(self) -> str:
        return "ran" if self.ran else "restored from DVC's run-cache" if self.restored else "unchanged, skipped"

    @property
    def out_of_memory(self) -> bool:
        return self.exit_code == stage_env.EXIT_OUT_OF_MEMORY

    @property
    def bad_input(self) -> bool:
        return self.exit_code == stage_env.EXIT_BAD_INPUT


def reproduce(stage: str, env: dict[str, str], log_file: Path,
              on_poll: Callable[[], None] = lambda: None, echo: IO[bytes] | None = None) -> StageOutcome:
    """`dvc repro --single-item <stage>` in its own process: runs the stage only if its deps, params or
    outs changed. Output goes to `log_file` (and `echo`); `on_poll` is called every few seconds."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "wb") as log:
        process = subprocess.Popen([*DVC, "repro", "--single-item", stage], stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
        position = 0
        while process.poll() is None:
            time.sleep(POLL_SECONDS)
            position = _copy_new_output(log_file, position, echo)
            on_poll()
        _copy_new_output(log_file, position, echo)
    output = log_file.read_text(errors="replace")
    exit_code = 0
    if process.returncode != 0:
        match = re.search(r"exited with (\d+)", output)
        exit_code = int(match.group(1)) if match else process.returncode
    skipped = f"Stage '{stage}' didn't change, skipping" in output
    restored = f"Stage '{stage}' is cached - skipping run" in output
    error = _last_error_line(subprocess.CompletedProcess([], process.returncode, output, ""))
    return StageOutcome(stage, ran=not (skipped or restored), exit_code=exit_code,
                        error=error if process.returncode else "", log_file=log_file, restored=restored)


def _copy_new_output(log_file: Path, position: int, echo: IO[bytes] | None) -> int:
    with open(log_file, "rb") as handle:
        handle.seek(position)
        new = handle.read()
    if echo is not None and new:
        echo.write(new)
        echo.flush()
    return position + len(new)


def push() -> str:
    """Send cached data and outputs to the default DVC remote; returns DVC's summary line."""
    lines = dvc("push").stdout.strip().splitlines()
    return lines[-1] if lines else "nothing to push"


def _last_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("error:")]  # distilflow's one-line message
    errors = [line for line in lines if line.startswith("ERROR")]
    return (ours or errors or lines or [f"exit code {result.returncode}"])[-1][:300]
