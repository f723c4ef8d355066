"""Stage `glue_report`: the per-task results -> GLUE score, retention, size and speed of the student
against the teacher (metrics/glue.json for DVC, a markdown table and a chart in paths.glue)."""

from __future__ import annotations

from pathlib import Path

from distilflow.base.devices import pick_device
from distilflow.base.files import exclusive, read_json
from distilflow.base.model_folder import MODEL_META
from distilflow.base.pretrained import encoder_fingerprint
from distilflow.config import Params
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import select_tasks
from distilflow.evaluation.glue_results import (
    GlueReport,
    TaskResult,
    build_report,
    pipeline_models,
    read_task_results,
    task_results_file,
)
from distilflow.evaluation.latency import ENCODER, machine, measure
from distilflow.evaluation.report import write_report
from distilflow.ops.tracking import Tracking


def run(params: Params) -> GlueReport:
    sources = pipeline_models(params)
    results: dict[str, dict[str, TaskResult]] = {role: {} for role in sources}
    for task in select_tasks(params.glue, None):
        path = task_results_file(params.paths.glue, task.name)
        if not path.is_file():
            raise DistilflowError(f"no GLUE result for '{task.name}' at {path}: run `distilflow glue-task {task.name}` first")
        for role, result in read_task_results(path).items():
            results[role][task.name] = result
    with exclusive(params.paths.metrics / "glue.json", params.orchestration.lock_wait_seconds), \
            Tracking(params.tracking) as tracking, tracking.run("glue report", tags={"stage": "glue_report"}) as run:
        report = publish(params, tracking, sources, results, run.info.run_id, params.paths.glue,
                         params.paths.metrics / "glue.json")
        student_model = read_json(params.paths.student / MODEL_META).get("mlflow_model_id")
        if tracking.logged_model_exists(student_model):  # the student's model page shows its GLUE figures
            tracking.log_metrics(report.summary_metrics(), model_id=student_model)
        return report


def publish(params: Params, tracking: Tracking, sources: dict[str, str], results: dict[str, dict[str, TaskResult]],
            run_id: str | None, output: Path, metrics_file: Path) -> GlueReport:
    """Measure size and speed, build the report, log it to the active MLflow run and write its files."""
    latency = params.glue.latency
    on_gpu = pick_device(params.glue.device).type == "cuda"
    speeds = measure(sources, latency.batch_sizes, latency.seq_length, latency.repeats, gpu=on_gpu)
    fingerprints = {role: encoder_fingerprint(name) for role, name in sources.items()}
    report = build_report(params.glue.model_dump(mode="json", exclude={"progress"}), results, sources, fingerprints, speeds)
    report.mlflow_run_id = run_id
    report.timing = {**machine(), "model": ENCODER}
    tracking.log_metrics(report.summary_metrics())
    for path in write_report(report, output, metrics_file).values():
        tracking.log_artifacts(path)
    return report
