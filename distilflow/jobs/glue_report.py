"""Stage `glue_report`: the per-task results -> GLUE score, retention, size and speed of the student
against the teacher (metrics/glue.json for DVC, a markdown table and a chart in paths.glue)."""

from __future__ import annotations

from distilflow.base.files import exclusive, read_json
from distilflow.base.model_folder import MODEL_META
from distilflow.config import Params
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import select_tasks
from distilflow.evaluation.glue_results import (
    GlueReport,
    TaskResult,
    pipeline_models,
    read_task_results,
    task_results_file,
)
from distilflow.ops.tracking import Tracking
from distilflow.steps.glue_report import publish


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
