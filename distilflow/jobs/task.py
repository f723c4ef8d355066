"""`distilflow task NAME` (stage task@NAME, the task flow): your fine-tuned classifier distilled into a small
student for your own labelled task (params.yaml `tasks:`), end to end:

  the task's rows (evaluation/task_data.py) and your teacher classifier, their labels matched (one line if not);
  the teacher scored as it is and its logits on the training rows kept (the soft targets; cached per teacher and
  data in paths.tasks/NAME/teacher);
  the student (a copy of the teacher with student.n_layers of its layers, or the distilled student) fine-tuned over
  the seeds with (1 - w) task loss + w KD by GLUE's code, the learning rate chosen on the selection split;
  the report (paths.tasks/NAME/report.json and metrics/tasks/NAME.json): scores, retention, size, latency;
  ONNX fp32 and int8, checked; the student registered as distilflow-NAME, alias challenger, served from int8 when
  it passed, promoted by the registry's rule on the task's score.

Resumable: each fine-tuning checkpoints, finished ones are kept; a rerun after a kill redoes only the unfinished.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distilflow.base import stage_env
from distilflow.base.files import exclusive, read_json, write_json
from distilflow.base.hashing import fingerprint
from distilflow.base.pretrained import require_length_fits
from distilflow.config import Params, TaskConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import task_data_hash
from distilflow.evaluation.glue_runs import evaluate_task
from distilflow.evaluation.latency import machine
from distilflow.evaluation.task_data import REPORT, UserTask, load_user_task
from distilflow.steps.task_student import student_start
from distilflow.evaluation.teacher_classifier import (
    TeacherBaseline,
    TeacherClassifier,
    load_teacher_classifier,
    matched_to_teacher,
    teacher_baseline,
)
from distilflow.export.task_export import export_task_student
from distilflow.ops import task_pins
from distilflow.ops.logged_model import log_task_dataset
from distilflow.ops.tracking import Tracking
from distilflow.steps.task_registration import register_task_student

REPORT_FILE = "report.json"


@dataclass
class TaskOutcome:
    report: dict
    version: str | None  # the registry version (None: tracking off)
    promotion: str


def task_config(params: Params, name: str) -> TaskConfig:
    if name not in params.tasks:
        known = ", ".join(params.tasks) or "none yet"
        raise DistilflowError(f"no task {name!r} in params.yaml's tasks: ({known}): add it there (README \"Your own "
                              "task\")")
    return params.tasks[name]


def run(params: Params, name: str) -> TaskOutcome:
    """The task from its pinned copies (ops/task_pins.py: `distilflow task` pins them first, the pipeline's pin too)."""
    given = task_config(params, name)
    pinned_versions = task_pins.pinned_versions(name, given)
    config = task_pins.pinned(name, given)
    recipe = config.recipe(params.glue)
    folder = params.paths.tasks / name
    require_length_fits(config.teacher_classifier, "teacher classifier", {"finetune.max_seq_length": recipe.max_seq_length})
    user_task = load_user_task(name, config)  # every data problem is one line before a model loads
    teacher = load_teacher_classifier(config.teacher_classifier)
    user_task = matched_to_teacher(user_task, teacher)
    data_hash = task_data_hash(user_task.splits)  # its rows, every split: what the targets, report and tags are keyed on
    with exclusive(folder, params.orchestration.lock_wait_seconds), Tracking(params.tracking) as tracking, \
            tracking.run(f"task {name}", tags={"stage": "task", "task": name}) as active:
        tracking.log_params({"task": config.model_dump(mode="json"), "finetune": recipe.model_dump(mode="json"),
                             "student_shape": params.student.model_dump(mode="json")})
        if tracking.enabled:
            log_task_dataset(name, user_task.splits["train"], data_hash)
        baseline = cached_baseline(teacher, user_task, data_hash, recipe.max_seq_length, folder / "teacher")
        start = student_start(config, teacher, params.student, params.paths.student, folder / "student-start",
                              params.distill.train.seed)
        soft_targets = baseline.soft_targets if recipe.distillation.weight > 0 else None
        result = evaluate_task(str(start), user_task.task, recipe, soft_targets=soft_targets,
                               keep_classifier=folder / "classifier", splits=user_task.splits,
                               checkpoints=stage_env.resumable_path(folder / "checkpoints"))
        exported = export_task_student(folder / "classifier", teacher.model, user_task.task,
                                       user_task.splits[REPORT], recipe.max_seq_length, params.export, folder / "export")
        report = task_report(name, config, user_task, baseline, result, exported, start) | \
            {"data_hash": data_hash, "teacher_fingerprint": teacher.fingerprint,  # the rows and weights it used
             "pinned": pinned_versions}  # and the DVC versions they were read from
        write_json(folder / REPORT_FILE, report)
        write_json(params.paths.metrics / "tasks" / f"{name}.json", report)
        tracking.log_metrics(flat_numbers(report))
        version, promotion = register_task_student(params, tracking, name, folder, report, exported,
                                                   user_task, active.info.run_id)
    return TaskOutcome(report, version, promotion)


def cached_baseline(teacher: TeacherClassifier, user_task: UserTask, data_hash: str, max_length: int,
                    folder: Path) -> TeacherBaseline:
    """The teacher's scores and soft targets, computed once per teacher, data and length (predicting a large training
    set takes a while on a CPU)."""
    key = fingerprint(teacher.fingerprint, data_hash, max_length)
    scores, targets = folder / f"{key}.json", folder / f"{key}.npy"
    if scores.is_file() and targets.is_file():
        return TeacherBaseline(read_json(scores), np.load(targets))
    baseline = teacher_baseline(teacher, user_task, max_length)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(targets, baseline.soft_targets)
    write_json(scores, baseline.metrics)  # last: its presence says both are complete
    return baseline


def task_report(name: str, config: TaskConfig, user_task: UserTask, baseline: TeacherBaseline, result,
                exported, start: Path) -> dict:
    """The figures a user compares students on, for the report split, with every seed's score."""
    task = user_task.task
    teacher_score = statistics.mean(baseline.metrics[REPORT][metric] for metric in task.metrics)
    selected = [run for run in result.runs if run["learning_rate"] == result.learning_rate]
    per_seed = {str(run["seed"]): run["score"] for run in selected}
    shape = json.loads((start / "config.json").read_text())
    return {
        "task": name, "metrics": list(task.metrics), "labels": list(user_task.label_names),
        "rows": {split: len(rows) for split, rows in user_task.splits.items() if split != REPORT} |
                {"report": len(user_task.splits[REPORT])},
        "teacher_classifier": config.teacher_classifier, "student_start": str(start),
        "teacher": {"score": teacher_score, "metrics": baseline.metrics},
        "student": {"score": result.score, "per_seed": per_seed, "selection_score": result.selection_score,
                    "learning_rate": result.learning_rate, "metrics": result.metrics},
        "retention": result.score / teacher_score if teacher_score > 0 else None,
        "retention_per_seed": {seed: score / teacher_score for seed, score in per_seed.items()} if teacher_score > 0 else {},
        "shape": {"layers": shape["num_hidden_layers"], "hidden_size": shape["hidden_size"]},
        "export": exported.metrics, "timing": machine(),
        "served": "onnx_int8" if exported.int8 is not None else "pytorch",
        "why_not_int8": exported.why_not_int8,
    }


def flat_numbers(report: dict) -> dict[str, float]:
    """The report's headline numbers as MLflow metrics."""
    numbers = {"teacher_score": report["teacher"]["score"], "student_score": report["student"]["score"],
               **{key: value for key, value in report["export"].items() if isinstance(value, float)}}
    if report["retention"] is not None:
        numbers["retention"] = report["retention"]
    return numbers


def read_report(params: Params, name: str) -> dict:
    return json.loads((params.paths.tasks / name / REPORT_FILE).read_text())
