"""Stage `glue@<task>`: the student (paths.student) and the teacher baseline fine-tuned on one GLUE
task -> paths.glue/tasks/<task>.json. The baseline is the teacher as users have it (teacher.model),
cached across student changes with its soft targets; the student is always fine-tuned (DVC reruns
this stage only when something it depends on changed), learning from those soft targets too when
glue.distillation.weight > 0."""

from __future__ import annotations

from distilflow.base.files import exclusive
from distilflow.config import Params
from distilflow.evaluation.glue_results import (
    BASELINE_ROLE,
    TaskResult,
    classifier_folder,
    pipeline_models,
    task_results_file,
    write_task_results,
)
from distilflow.ops.tracking import Tracking
from distilflow.steps.glue_task import require_lengths_fit, selected_tasks, tracked_task_run


def run(params: Params, task_name: str) -> dict[str, TaskResult]:
    task = selected_tasks(params, [task_name])[0]
    output = task_results_file(params.paths.glue, task.name)
    models = pipeline_models(params)
    require_lengths_fit(params, models)
    with exclusive(output, params.orchestration.lock_wait_seconds), Tracking(params.tracking) as tracking:
        results = {BASELINE_ROLE: tracked_task_run(params, tracking, BASELINE_ROLE, models[BASELINE_ROLE], task)}
        results["student"] = tracked_task_run(params, tracking, "student", models["student"], task,
                                              teacher=models[BASELINE_ROLE],
                                              keep_classifier=classifier_folder(params.paths.glue, task.name))
        write_task_results(output, results)
    return results
