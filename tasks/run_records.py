"""The pipeline's MLflow parent run (open, tag, close) and the run's report as a Prefect artifact."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from distilflow.base.files import write_text
from distilflow.config import Params
from distilflow.config.load import DEFAULT_PARAMS_PATH, load_params
from distilflow.evaluation.report import render_markdown
from distilflow.ops import promotion_rule, run_summary
from distilflow.ops.tracking import Tracking, flat_params
from distilflow.ops.variant_runs import REPORT_ARTIFACT
from distilflow.steps.run_outputs import RunOutputs


@task(name="load params")
def load_project_params(overrides: list[str]) -> Params:
    """params.yaml with this run's overrides, checked; the file itself is left as it is (a run with overrides
    is a DVC experiment: the values go into its dvc.lock and MLflow, never into a later run's defaults)."""
    if overrides:
        get_run_logger().info("this run's overrides (params.yaml unchanged): %s", ", ".join(overrides))
    return load_params(DEFAULT_PARAMS_PATH, overrides)


@task(name="open MLflow pipeline run")
def open_pipeline_run(params: Params, run_id: str | None = None) -> str:
    """A new parent run, or `run_id` (a sweep's variant run, opened by the sweep) with this run's params and tags."""
    tags = {"stage": "pipeline", "prefect_flow_run_id": str(flow_run.get_id() or ""),
            "prefect_flow_run_name": str(flow_run.get_name() or "")}
    with Tracking(params.tracking) as tracking:
        if run_id:
            tracking.log_to_run(run_id, {}, tags=tags, params=flat_params(params.model_dump(mode="json")))
        else:
            run_id = tracking.start_parent_run(run_summary.run_name(params), tags, params.model_dump(mode="json"))
        get_run_logger().info("MLflow parent run %s", tracking.run_url(run_id))
    return run_id


@task(name="record pinned inputs")
def record_inputs(params: Params, run_id: str) -> None:
    """Corpus, GLUE and teacher as the pipeline run's MLflow datasets (digest: their DVC md5)."""
    with Tracking(params.tracking) as tracking:
        tracking.log_source_datasets(params.versioning, list(params.versioning.sources), run_id=run_id)


@task(name="log headline metrics")
def log_headline_metrics(params: Params, run_id: str, experiment: str | None = None) -> dict[str, float]:
    """GLUE score, retention, latency, size and the student's MLM figures on the pipeline run itself,
    so that pipeline runs compare side by side in the MLflow runs table and charts."""
    outputs = RunOutputs(params, experiment)
    report = outputs.report()
    metrics = run_summary.headline_metrics(report, outputs.metrics("distill.json"))
    with Tracking(params.tracking) as tracking:
        tracking.log_to_run(run_id, metrics)
        if tracking.enabled:  # the report itself, for a sweep that ran this run on another machine (a work pool)
            tracking.client().log_dict(run_id, report.model_dump(mode="json"), REPORT_ARTIFACT)
    return metrics


@task(name="close MLflow pipeline run")
def close_pipeline_run(params: Params, run_id: str, succeeded: bool) -> None:
    with Tracking(params.tracking) as tracking:
        tracking.end_parent_run(run_id, succeeded)


@task(name="publish report")
def publish_report(params: Params, run_id: str, stages: dict[str, str], version: str, created: bool,
                   decision: promotion_rule.Decision, seconds: dict[str, float], total_seconds: float,
                   experiment: str | None = None) -> str:
    outputs = RunOutputs(params, experiment)
    glue_markdown = render_markdown(outputs.report())
    with Tracking(params.tracking, for_writing=False) as tracking:
        url = tracking.run_url(run_id)
    markdown = "\n".join([
        "# distilflow pipeline run", "",
        f"- MLflow run: {url}",
        (f"- Registered model: `{params.registry.model_name}` version {version} "
         f"({'new, alias challenger' if created else 'already registered'})" if version else "- Not registered"),
        f"- Promotion: {'champion' if decision.promote else 'unchanged'} — {decision.reason}", "",
        *([f"- Ran as DVC experiment `{experiment}` (params.yaml unchanged): `dvc exp apply {experiment}` brings it "
            "into the working tree", ""] if experiment else []),
        *wall_time_table(stages, seconds, total_seconds), "", glue_markdown, outputs.export_markdown()])
    create_markdown_artifact(markdown, key="distilflow-report", description="GLUE, retention, speed, registry")
    with Tracking(params.tracking) as tracking:
        tracking.log_to_run(run_id, {}, tags={run_summary.DESCRIPTION_TAG: run_summary.description(params, markdown)})
    return str(write_text(params.paths.glue / "pipeline_report.md", markdown))


def wall_time_table(stages: dict[str, str], seconds: dict[str, float], total_seconds: float) -> list[str]:
    """Each step's wall time, what DVC did with each stage (ran, restored from its run-cache, skipped) and the
    flow's total, as a Markdown table."""
    rows = [f"| {step} | {stages.get(step, '')} "
            f"| {clock_time(value)} |" for step, value in seconds.items()]
    return ["| step | stage | wall time |", "|---|---|---|", *rows, f"| **total** (flow) | | **{clock_time(total_seconds)}** |"]


def clock_time(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def tag_run(params: Params, run_id: str, tags: dict[str, str]) -> None:
    with Tracking(params.tracking) as tracking:
        tracking.log_to_run(run_id, {}, tags=tags)
