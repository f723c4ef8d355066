"""`distilflow glue` (by hand, not a stage): fine-tune any model (and a teacher, as the cached baseline)
on GLUE tasks, then report, in one MLflow run with a nested run per (model, task). The report goes to
paths.glue/by_hand/, never over the pipeline's own (which DVC tracks). With `record`, the teacher's
baselines go into paths.glue_baselines too, to be committed (a full-data baseline takes an hour)."""

from __future__ import annotations

from pathlib import Path

from distilflow.config import Params
from distilflow.evaluation.glue_results import BASELINE_ROLE, GlueReport
from distilflow.evaluation.glue_runs import record_baseline
from distilflow.ops.tracking import Tracking
from distilflow.steps.glue_report import publish
from distilflow.steps.glue_task import glue_cache, require_lengths_fit, selected_tasks, tracked_task_run


def run(params: Params, model_name: str, teacher_name: str | None = None,
        tasks: str | list[str] | None = None, record: bool = False) -> GlueReport:
    """`record`: the baseline (the teacher, or without one the model itself) goes into paths.glue_baselines."""
    selected = selected_tasks(params, tasks)
    sources = {"student": model_name, BASELINE_ROLE: teacher_name} if teacher_name else {"model": model_name}
    require_lengths_fit(params, sources)
    with Tracking(params.tracking) as tracking, \
            tracking.run("glue", tags={"stage": "glue", "model": model_name, "teacher": teacher_name or ""}) as parent:
        tracking.log_params({"glue": params.glue.model_dump(mode="json"), "model": model_name,
                             "teacher": teacher_name or "", "tasks": ",".join(task.name for task in selected)})
        def fine_tune(role: str, model: str, teacher: str | None = None) -> dict:
            return {task.name: tracked_task_run(params, tracking, role, model, task, nested=True, teacher=teacher)
                    for task in selected}

        if teacher_name:  # the teacher first: its fine-tuned baselines give the soft targets (glue.distillation)
            baseline = fine_tune(BASELINE_ROLE, teacher_name)
            results = {"student": fine_tune("student", model_name, teacher_name), BASELINE_ROLE: baseline}
        else:  # a model being recorded is fine-tuned as a baseline is (cached)
            results = {"model": fine_tune(BASELINE_ROLE if record else "model", model_name)}
        folder = by_hand_folder(params)
        report = publish(params, tracking, sources, results, parent.info.run_id, folder, folder / "glue.json")
    if record:
        for task in selected:
            record_baseline(teacher_name or model_name, task, params.glue, glue_cache(params),
                            params.paths.glue_baselines)
    return report


def by_hand_folder(params: Params) -> Path:
    return params.paths.glue / "by_hand"
