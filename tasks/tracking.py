"""The pipeline's MLflow parent run (open, tag, close) and the run's report as a Prefect artifact."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from distilflow.config import Params
from distilflow.evaluation.report import MARKDOWN_FILE
from distilflow.ops import registry, tracking
from distilflow.ops.files import write_text
from distilflow.ops.params_file import load_params


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


@task(name="close MLflow pipeline run")
def close_pipeline_run(params: Params, run_id: str, succeeded: bool) -> None:
    tracking.end_parent_run(params.tracking, run_id, succeeded)


@task(name="publish report")
def publish_report(params: Params, run_id: str, stages_ran: dict[str, bool], version: str, created: bool,
                   decision: registry.Decision) -> str:
    glue_markdown = (params.paths.glue / MARKDOWN_FILE).read_text()
    stages = ", ".join(f"{stage} ({'ran' if ran else 'skipped'})" for stage, ran in stages_ran.items())
    markdown = "\n".join([
        "# distilflow pipeline run", "",
        f"- MLflow run: {tracking.run_url(params.tracking, run_id)}",
        f"- Registered model: `{params.registry.model_name}` version {version} "
        f"({'new, alias challenger' if created else 'already registered'})",
        f"- Promotion: {'champion' if decision.promote else 'unchanged'} — {decision.reason}",
        f"- Stages: {stages}", "", glue_markdown])
    create_markdown_artifact(markdown, key="distilflow-report", description="GLUE, retention, speed, registry")
    return str(write_text(params.paths.glue / "pipeline_report.md", markdown))


def tag_run(params: Params, run_id: str, tags: dict[str, str]) -> None:
    import mlflow

    tracking.configure(params.tracking)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
