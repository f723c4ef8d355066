"""GLUE results as data: one task's scores (written by its GLUE stage), and the report (scores per task
and model, GLUE score, retention = student / teacher, size and speed), one typed model read by the report
stage, the registry's tags and the `models` table. Rendering it is report.py's job.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from pydantic import BaseModel

from distilflow.base.files import write_text
from distilflow.config import Params

BASELINE_ROLE = "teacher"  # the model the others are compared with (retention, speed-up)


class TaskResult(BaseModel):
    task: str
    metrics: dict[str, dict[str, float]]  # evaluation ('' or 'm'/'mm') -> metric -> median over seeds
    score: float  # the task's GLUE number on its dev sets (mean of its metrics), at the selected learning rate
    selection_score: float | None = None  # the same on the held-out selection slice (glue.selection), if scored
    learning_rate: float
    runs: list[dict] = []  # every (lr, seed) with its metrics

    def flat_metrics(self) -> dict[str, float]:
        """Metric names as GLUE reports them: mrpc_f1, mnli_m_accuracy, stsb_pearson, ..."""
        flat = {}
        for evaluation, metrics in self.metrics.items():
            prefix = f"{self.task}_{evaluation}_" if evaluation else f"{self.task}_"
            flat.update({prefix + name: value for name, value in metrics.items()})
        return flat


# The settings that make two GLUE scores comparable (the promotion rule checks them).
COMPARABLE_SETTINGS = ("seeds", "max_train_examples", "learning_rates", "epochs", "max_seq_length", "batch_size",
                       "warmup_fraction", "weight_decay")


class ModelScores(BaseModel):
    source: str
    fingerprint: str
    scores: dict[str, float]  # task -> the task's GLUE number
    metrics: dict[str, dict[str, float]]  # task -> official metric names (mrpc_f1, ...) -> value
    glue_score: float
    speed: dict[str, float]  # parameters, size_mb, latency_ms_<device>_b<batch>
    # The GLUE score on the held-out selection slices (glue.selection.holdout > 0): what a sweep ranks on
    selection_glue_score: float | None = None


class GlueReport(BaseModel):
    tasks: list[str]
    settings: dict
    models: dict[str, ModelScores]  # "student" and "teacher" (or "model" alone)
    # student / teacher; None where the teacher's score is not positive (e.g. a CoLA MCC of 0)
    retention: dict[str, float | None] = {}
    glue_retention: float | None = None
    speedup: dict[str, float] = {}
    parameter_ratio: float | None = None
    mlflow_run_id: str | None = None
    # how latency was measured: protocol, model (the bare encoder), threads, machine (speed.machine)
    timing: dict[str, str | int] = {}

    @property
    def student(self) -> ModelScores:
        return self.models.get("student") or self.models["model"]

    def comparable_settings(self) -> dict[str, str]:
        """What must match between two reports for their GLUE scores to be compared."""
        settings = {"tasks": ",".join(self.tasks)}
        settings.update({key: str(self.settings.get(key)) for key in COMPARABLE_SETTINGS})
        return settings

    def summary_metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow."""
        summary = {f"{role}_{name}": value for role, result in self.models.items() for name, value in result.speed.items()}
        summary.update({f"{role}_glue_score": result.glue_score for role, result in self.models.items()})
        summary.update({f"{role}_selection_glue_score": result.selection_glue_score
                        for role, result in self.models.items() if result.selection_glue_score is not None})
        summary.update({f"{role}_{task}_score": score for role, result in self.models.items()
                        for task, score in result.scores.items()})
        if self.glue_retention is not None:
            summary["glue_retention"] = self.glue_retention
        summary.update({f"{task}_retention": value for task, value in self.retention.items() if value is not None})
        summary.update({f"speedup_{key}": value for key, value in self.speedup.items()})
        return summary


def glue_score(scores: dict[str, float]) -> float:
    """Macro average over the tasks that were run (say which, next to it)."""
    return statistics.mean(scores.values())


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where that means nothing (a teacher score of 0 or below)."""
    return numerator / denominator if denominator > 0 else None


def build_report(settings: dict, results: dict[str, dict[str, TaskResult]], sources: dict[str, str],
                 fingerprints: dict[str, str], speeds: dict[str, dict[str, float]]) -> GlueReport:
    tasks = list(next(iter(results.values())))
    models = {}
    for role, by_task in results.items():
        scores = {task: result.score for task, result in by_task.items()}
        selection = {task: result.selection_score for task, result in by_task.items()}
        models[role] = ModelScores(source=sources[role], fingerprint=fingerprints[role], scores=scores,
                                   metrics={task: result.flat_metrics() for task, result in by_task.items()},
                                   glue_score=glue_score(scores), speed=speeds[role],
                                   selection_glue_score=None if None in selection.values() else glue_score(selection))
    report = GlueReport(tasks=tasks, settings=settings, models=models)
    if BASELINE_ROLE in models:
        student, teacher = models["student"], models[BASELINE_ROLE]
        report.retention = {task: ratio(student.scores[task], teacher.scores[task]) for task in tasks}
        report.glue_retention = ratio(student.glue_score, teacher.glue_score)
        report.speedup = {key.removeprefix("latency_ms_"): teacher.speed[key] / student.speed[key]
                          for key in student.speed if key.startswith("latency_ms_") and key in teacher.speed}
        report.parameter_ratio = student.speed["parameters"] / teacher.speed["parameters"]
    return report


def pipeline_models(params: Params) -> dict[str, str]:
    """role -> model in the pipeline's report: the student it made, and the teacher as users have it
    (teacher.model, not the copy with a trained head)."""
    return {"student": str(params.paths.student), BASELINE_ROLE: params.teacher.model}


def classifier_folder(glue_dir: Path, task: str) -> Path:
    """The student fine-tuned on `task` by its GLUE stage (first seed, selected lr), for the export."""
    return glue_dir / "classifiers" / task


def task_results_file(glue_dir: Path, task: str) -> Path:
    """Where the GLUE stage of `task` writes its results (dvc.yaml declares the same)."""
    return glue_dir / "tasks" / f"{task}.json"


def write_task_results(path: Path, results: dict[str, TaskResult]) -> None:
    write_text(path, json.dumps({role: result.model_dump() for role, result in results.items()}, indent=2))


def read_task_results(path: Path) -> dict[str, TaskResult]:
    return {role: TaskResult.model_validate(result) for role, result in json.loads(path.read_text()).items()}


def read_report(metrics_file: Path) -> GlueReport:
    return GlueReport.model_validate_json(metrics_file.read_text())
