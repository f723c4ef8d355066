"""Prefect tasks of the pipeline. Each wraps a core function (distilflow.*) and adds logging, retries,
progress artifacts; the stages themselves run as separate processes through DVC.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run

from distilflow import registry, runtime, tracking, versioning
from distilflow.config import Params, load_params
from distilflow.errors import DistilflowError

LOG_DIR = Path("artifacts/logs")


class StageFailed(DistilflowError):
    """A stage process died for a reason a retry may fix (lost process, flaky I/O)."""

    retryable = True


def _not_bad_input(task, task_run, state) -> bool:
    """Retry condition: bad input (a DistilflowError) fails at once, anything else may be retried."""
    try:
        state.result()
    except DistilflowError as error:
        return error.retryable
    except Exception:
        return True
    return False


@task(name="load params")
def load_project_params() -> Params:
    return load_params("params.yaml")


@task(name="open MLflow pipeline run")
def open_pipeline_run(params: Params) -> str:
    run_id = tracking.start_parent_run(params.tracking, "pipeline", {
        "stage": "pipeline", "prefect_flow_run_id": str(flow_run.get_id() or ""),
        "prefect_flow_run_name": str(flow_run.get_name() or "")}, params.model_dump(mode="json"))
    get_run_logger().info("MLflow parent run %s", tracking.run_url(params.tracking, run_id))
    return run_id


@task(name="pin data with DVC", retries=2, retry_delay_seconds=5, retry_condition_fn=_not_bad_input)
def pin_data(params: Params, run_id: str) -> dict[str, str]:
    hashes = versioning.pin_sources(params.versioning)
    _tag_run(params, run_id, {f"dvc_{name}": value for name, value in hashes.items()})
    get_run_logger().info("data versions (DVC md5): %s", hashes)
    return hashes


@task(name="list DVC stages")
def list_stages() -> list[str]:
    return versioning.pipeline_stages()


@task(name="stage", task_run_name="{stage}", retry_condition_fn=_not_bad_input)
def reproduce_stage(params: Params, stage: str, run_id: str) -> bool:
    """Run one dvc.yaml stage (if anything it depends on changed) in its own process; True if it ran.

    On CUDA out-of-memory the stage is rerun with the micro-batch split in two (same effective batch),
    resuming from its last checkpoint, up to orchestration.oom_retries times.
    """
    logger = get_run_logger()
    progress_file = LOG_DIR / f"{stage}.progress.json"
    progress_id = create_progress_artifact(0.0, key=_artifact_key(f"progress-{stage}"), description=f"stage {stage}")

    def on_poll() -> None:
        state = runtime.read_progress(progress_file)
        if state and state["total"]:
            update_progress_artifact(progress_id, 100.0 * state["done"] / state["total"],
                                     description=f"{stage}: {state['description']} {state['done']}/{state['total']}")

    for attempt in range(params.orchestration.oom_retries + 1):
        split = 2 ** attempt
        progress_file.unlink(missing_ok=True)
        outcome = versioning.reproduce(stage, _stage_env(run_id, split, progress_file), LOG_DIR / f"{stage}.log",
                                       on_poll=on_poll, echo=getattr(sys.stdout, "buffer", None))
        if not outcome.out_of_memory:
            break
        logger.warning("%s: CUDA out of memory with micro-batch split %d; retrying with split %d", stage, split, 2 * split)
    update_progress_artifact(progress_id, 100.0, description=f"{stage}: {'done' if outcome.ran else 'unchanged, skipped'}")
    if outcome.bad_input:
        raise DistilflowError(f"stage {stage}: {outcome.error}")
    if outcome.exit_code != 0 or outcome.error:
        raise StageFailed(f"stage {stage} failed ({outcome.error}); log: {outcome.log_file}")
    logger.info("%s: %s", stage, "ran" if outcome.ran else "unchanged, skipped")
    return outcome.ran


def _stage_env(run_id: str, split: int, progress_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The stage commands (`distilflow ...`) come from the same environment as this process.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env[runtime.PARENT_RUN_ENV] = run_id
    env[runtime.BATCH_SPLIT_ENV] = str(split)
    env[runtime.PROGRESS_FILE_ENV] = str(progress_file.resolve())
    return env


@task(name="register student")
def register_student(params: Params, run_id: str, data_hashes: dict[str, str]) -> tuple[str, bool]:
    report = json.loads((params.paths.metrics / "glue.json").read_text())
    outputs = versioning.output_hashes({"student": params.paths.student, "teacher": params.paths.teacher})
    tags = registry.version_tags(report, {**data_hashes, **{f"{k}_artifact": v for k, v in outputs.items()}})
    version, created = registry.register_student(params.registry, params.paths.student, run_id, tags)
    _tag_run(params, run_id, {"registered_version": str(version.version), "registered_new": str(created),
                              **{f"dvc_{k}_artifact": v for k, v in outputs.items()}})
    get_run_logger().info("%s version %s (%s)", params.registry.model_name, version.version,
                          "new challenger" if created else "already registered, nothing new")
    return str(version.version), created


@task(name="promote by policy")
def promote_by_policy(params: Params, version: str) -> registry.Decision:
    decision = registry.promote_by_policy(params.registry, version)
    get_run_logger().info("version %s %s: %s", version, "promoted to champion" if decision.promote else "not promoted",
                          decision.reason)
    return decision


@task(name="push to DVC remote", retries=2, retry_delay_seconds=10)
def push_data(params: Params) -> str:
    if not params.versioning.push:
        return "push disabled (versioning.push: false)"
    return versioning.push()


@task(name="publish report")
def publish_report(params: Params, run_id: str, stages_ran: dict[str, bool], version: str, created: bool,
                   decision: registry.Decision) -> str:
    glue_markdown = (params.paths.glue / "glue_report.md").read_text()
    stages = ", ".join(f"{stage} ({'ran' if ran else 'skipped'})" for stage, ran in stages_ran.items())
    markdown = "\n".join([
        "# distilflow pipeline run", "",
        f"- MLflow run: {tracking.run_url(params.tracking, run_id)}",
        f"- Registered model: `{params.registry.model_name}` version {version} "
        f"({'new, alias challenger' if created else 'already registered'})",
        f"- Promotion: {'champion' if decision.promote else 'unchanged'} — {decision.reason}",
        f"- Stages: {stages}", "", glue_markdown])
    create_markdown_artifact(markdown, key="distilflow-report", description="GLUE, retention, speed, registry")
    report_file = params.paths.glue / "pipeline_report.md"
    report_file.write_text(markdown)
    return str(report_file)


@task(name="close MLflow pipeline run")
def close_pipeline_run(params: Params, run_id: str, succeeded: bool) -> None:
    tracking.end_parent_run(params.tracking, run_id, succeeded)


def _tag_run(params: Params, run_id: str, tags: dict[str, str]) -> None:
    import mlflow

    tracking.configure(params.tracking)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def _artifact_key(text: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower())
