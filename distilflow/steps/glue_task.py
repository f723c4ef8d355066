"""One model fine-tuned on one GLUE task in its own MLflow run: the teacher baseline from its cache or the
recorded baselines, the student learning from the teacher's soft targets when glue.distillation asks.
What the glue@<task> stages and `distilflow glue` share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distilflow.base import stage_env
from distilflow.base.pretrained import require_length_fits
from distilflow.config import GlueConfig, Params
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import GlueTask, select_tasks
from distilflow.evaluation.glue_results import BASELINE_ROLE, TaskResult
from distilflow.evaluation.glue_runs import baseline_soft_targets, evaluate_task
from distilflow.ops.tracking import Tracking


def require_lengths_fit(params: Params, models: dict[str, str]) -> None:
    """glue.max_seq_length and the timed length within each model's positions, before any fine-tuning."""
    for role, name in models.items():
        require_length_fits(name, role, {"glue.max_seq_length": params.glue.max_seq_length,
                                         "glue.latency.seq_length": params.glue.latency.seq_length})


def selected_tasks(params: Params, tasks: str | list[str] | None) -> list[GlueTask]:
    selected = select_tasks(params.glue, tasks)
    if not selected:
        raise DistilflowError(f"no GLUE task to run from {params.glue.source}: check glue.tasks and glue.source")
    return selected


def tracked_task_run(params: Params, tracking: Tracking, role: str, model_name: str, task: GlueTask, nested: bool = False,
                     teacher: str | None = None, keep_classifier: Path | None = None) -> TaskResult:
    """Fine-tune one model on one task in its own MLflow run (same metric names in every run for the UI);
    with a `teacher` and glue.distillation.weight > 0, from the teacher's soft targets too;
    `keep_classifier`: where the first seed's classifier (of the selected lr) goes, for the export."""
    cache = glue_cache(params) if role == BASELINE_ROLE else None
    soft_targets = task_soft_targets(params, teacher, task)
    recipe = params.glue if role == BASELINE_ROLE else student_recipe(params.glue, soft_targets is not None)
    with tracking.run(f"{role} {task.name}", nested=nested,
                      tags={"stage": "glue_task", "role": role, "task": task.name, "model": model_name}):
        tracking.log_params({"task": task.name, "model": model_name, "role": role})
        tracking.log_source_datasets(params.versioning, ["glue"])
        tracking.log_params({"glue": recipe.model_dump(mode="json", exclude={"tasks"})})
        tracking.log_params({"task_distillation": soft_targets is not None})
        result = evaluate_task(model_name, task, recipe, cache_dir=cache, soft_targets=soft_targets,
                               keep_classifier=keep_classifier,
                               records_dir=params.paths.glue_baselines if cache is not None else None,
                               checkpoints=stage_env.resumable_path(
                                   params.paths.glue / "checkpoints" / f"{role}-{task.name}"))
        tracking.log_params({"selected_learning_rate": result.learning_rate})
        tracking.log_metrics({"score": result.score, **result.flat_metrics()})
    return result


def task_soft_targets(params: Params, teacher: str | None, task: GlueTask) -> np.ndarray | None:
    if teacher is None or params.glue.distillation.weight == 0:
        return None
    return baseline_soft_targets(teacher, task, params.glue, glue_cache(params), params.paths.glue_baselines)


def student_recipe(config: GlueConfig, distils: bool) -> GlueConfig:
    """The student's fine-tuning: the teacher's recipe, with its own epochs when set: glue.distillation.epochs while
    it learns from the teacher's targets, glue.student_epochs when it does not."""
    epochs = config.distillation.epochs if distils else config.student_epochs
    if epochs is None:
        return config
    return config.model_copy(update={"epochs": epochs})


def glue_cache(params: Params) -> Path:
    """The teacher baselines (results and soft targets), kept across student changes: the project's, also from a DVC
    experiment's temporary copy (git-ignored, it would be missing there, and every variant would fine-tune the
    teacher again)."""
    return stage_env.in_project(params.paths.glue / "cache")
