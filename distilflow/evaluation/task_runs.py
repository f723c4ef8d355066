"""A user's task scored (issue 44, items 2-3): the fine-tuned teacher as it is (its score on the report and selection
splits, its logits on the training rows as the soft targets), and a student fine-tuned over seeds with
`(1 - w) · task loss + w · KD` on those targets (glue.distillation), each seed scored on the same splits. The
fine-tuning and the metrics are GLUE's (evaluation/finetune.py, glue_data.compute_metrics): one code path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distilflow.config import GlueConfig
from distilflow.evaluation.finetune import finetune_and_evaluate
from distilflow.evaluation.glue_data import compute_metrics, selection_score, task_score
from distilflow.evaluation.glue_results import TaskResult
from distilflow.evaluation.glue_runs import summarize
from distilflow.evaluation.task_data import UserTask
from distilflow.evaluation.teacher_classifier import TeacherClassifier, predict


@dataclass
class TeacherBaseline:
    metrics: dict[str, dict[str, float]]  # split ('' = report, SELECTION) -> metric -> value
    soft_targets: np.ndarray  # its logits on the training rows, in their order


def teacher_baseline(teacher: TeacherClassifier, user_task: UserTask, max_length: int) -> TeacherBaseline:
    """The teacher scored on every split it is not trained on, and its logits on the training rows."""
    task, splits = user_task.task, user_task.splits
    text = task.text_columns
    metrics = {name: compute_metrics(task, predict(teacher, split, text, max_length), np.asarray(split["label"]))
               for name, split in splits.items() if name != "train"}
    return TeacherBaseline(metrics, predict(teacher, splits["train"], text, max_length))


def student_runs(student: str, user_task: UserTask, config: GlueConfig, soft_targets: np.ndarray | None,
                 save_to: Path | None = None) -> TaskResult:
    """The student fine-tuned once per learning rate and seed (with the teacher's targets when given), each scored;
    the learning rate chosen on the selection split. `save_to`: the first seed's classifier of each learning rate
    (`<save_to>.lr<lr>`), its config naming the task's labels."""
    task = user_task.task
    runs = []
    for learning_rate in config.learning_rates:
        for index, seed in enumerate(config.seeds):
            kept = save_to.with_name(f"{save_to.name}.lr{learning_rate:g}") if save_to and index == 0 else None
            outcome = finetune_and_evaluate(student, task, user_task.splits, config, seed, learning_rate,
                                            soft_targets=soft_targets, save_to=kept)
            if kept is not None:
                name_labels(kept, user_task.label_names)
            runs.append({"learning_rate": learning_rate, "seed": seed, "metrics": outcome.metrics,
                         "score": task_score(task, outcome.metrics),
                         "selection_score": selection_score(task, outcome.metrics)})
    return summarize(task, runs)


def name_labels(classifier: Path, label_names: tuple[str, ...]) -> None:
    """The saved classifier's config names its labels (id2label), so that a served model answers with them."""
    if not label_names:
        return
    config_file = classifier / "config.json"
    config = json.loads(config_file.read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(label_names)}
    config["label2id"] = {name: i for i, name in enumerate(label_names)}
    config_file.write_text(json.dumps(config, indent=2) + "\n")

