"""The stages of dvc.yaml as Prefect tasks: each runs `dvc repro --single-item <stage>` in its own
process (skipped by DVC when nothing it depends on changed), with progress and retries."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from distilflow.base import stage_env
from distilflow.config import Params
from distilflow.errors import DistilflowError
from distilflow.ops import dvc
from tasks.retries import not_bad_input

LOG_DIR = Path("artifacts/logs")


class StageFailed(DistilflowError):
    """A stage process died for a reason a retry may fix (lost process, flaky I/O)."""

    retryable = True


@task(name="list DVC stages")
def list_stages() -> list[str]:
    return dvc.pipeline_stages()


@task(name="stage", task_run_name="{stage}", retry_condition_fn=not_bad_input)
def reproduce_stage(params: Params, stage: str, run_id: str) -> str:
    """Run one dvc.yaml stage (if anything it depends on changed) in its own process; what DVC did: "ran",
    "restored from DVC's run-cache" or "unchanged, skipped".

    On CUDA out-of-memory the stage is rerun with the micro-batch split in two (same effective batch),
    resuming from its last checkpoint, up to orchestration.oom_retries times.
    """
    logger = get_run_logger()
    progress_file = LOG_DIR / f"{stage}.progress.json"
    progress_id = create_progress_artifact(0.0, key=artifact_key(f"progress-{stage}"), description=f"stage {stage}")

    def on_poll() -> None:
        state = stage_env.read_progress(progress_file)
        if state and state["total"]:
            update_progress_artifact(progress_id, 100.0 * state["done"] / state["total"],
                                     description=f"{stage}: {state['description']} {state['done']}/{state['total']}")

    for attempt in range(params.orchestration.oom_retries + 1):
        split = 2 ** attempt
        progress_file.unlink(missing_ok=True)
        outcome = dvc.reproduce(stage, _stage_env(run_id, split, progress_file), LOG_DIR / f"{stage}.log",
                                on_poll=on_poll, echo=getattr(sys.stdout, "buffer", None))
        if not outcome.out_of_memory:
            break
        logger.warning("%s: CUDA out of memory with micro-batch split %d; retrying with split %d", stage, split, 2 * split)
    update_progress_artifact(progress_id, 100.0, description=f"{stage}: {'done' if outcome.ran else outcome.verdict}")
    if outcome.bad_input:
        raise DistilflowError(f"stage {stage}: {outcome.error}")
    if outcome.exit_code != 0 or outcome.error:
        raise StageFailed(f"stage {stage} failed ({outcome.error}); log: {outcome.log_file}")
    logger.info("%s: %s", stage, outcome.verdict)
    return outcome.verdict


def _stage_env(run_id: str, split: int, progress_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The stage commands (`distilflow ...`) come from the same environment as this process.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env[stage_env.PARENT_RUN_ENV] = run_id
    env[stage_env.BATCH_SPLIT_ENV] = str(split)
    env[stage_env.PROGRESS_FILE_ENV] = str(progress_file.resolve())
    return env


def artifact_key(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower())


@task(name="stages as a DVC experiment", retry_condition_fn=not_bad_input)
def reproduce_experiment(params: Params, overrides: list[str], run_id: str) -> tuple[str, dict[str, str]]:
    """Every stage of dvc.yaml with this run's overrides, as one DVC experiment in a temporary copy of the project
    (`dvc exp run --temp -S ...`): params.yaml and the working tree stay as they are, the stages it does not
    change are restored from DVC's cache. Its name comes from the overrides: the same ones again reuse it.
    Returns (the experiment's name, what DVC did with each stage)."""
    from distilflow.base.hashing import fingerprint
    from distilflow.ops import experiments

    experiments.require_committed([Path(f"{source.path}.dvc") for source in params.versioning.sources.values()])
    name = f"run-{fingerprint(sorted(overrides))[:10]}"
    log_file = LOG_DIR / f"experiment-{name}.log"
    if name in experiments.finished():
        get_run_logger().info("DVC experiment %s ran with these overrides before: reused", name)
        return name, dict.fromkeys(dvc.pipeline_stages(), f"done before (experiment {name})")
    outcome = experiments.run(name, overrides, log_file, env={stage_env.PARENT_RUN_ENV: run_id})
    if not outcome.ok:
        raise DistilflowError(f"DVC experiment {name}: {outcome.error} (log: {log_file})")
    verdicts = experiments.stage_verdicts(log_file.read_text(errors="replace"))
    get_run_logger().info("DVC experiment %s: %s", name, verdicts)
    return name, verdicts
