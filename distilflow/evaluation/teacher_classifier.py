"""Your fine-tuned teacher (issue 44, item 2): an `AutoModelForSequenceClassification` folder or Hub id, used as it
is. Its predictions on the training rows are the student's soft targets; its score on the report split is the
baseline the student is compared with (teacher_baseline). The student is fine-tuned by GLUE's own code
(glue_runs.evaluate_task with the task's splits) and scored by the same metrics: one code path.

Its labels must be the data's: a teacher whose config names its labels (`id2label`) is matched by name, and its
order is the task's order from then on (the student's logit i is the teacher's logit i). A teacher without names
(`LABEL_0`, ...) is matched only to integer labels 0..n-1 of the data. Any other disagreement is one line naming
both label sets, never a silent remapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from distilflow.base.pretrained import load_pretrained, load_tokenizer, model_fingerprint
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import compute_metrics
from distilflow.evaluation.task_data import UserTask

PREDICT_BATCH = 64
_GENERIC = re.compile(r"LABEL_(\d+)")


@dataclass
class TeacherClassifier:
    name: str
    model: PreTrainedModel
    tokenizer: object
    label_names: tuple[str, ...]  # the teacher's, in its logit order
    fingerprint: str  # of its weights, head included: what its predictions are keyed on


def load_teacher_classifier(name: str) -> TeacherClassifier:
    fix = "set teacher_classifier to a folder (or Hub id) of a model fine-tuned for sequence classification"
    model, info = load_pretrained(AutoModelForSequenceClassification, name, "teacher classifier", fix=fix,
                                  output_loading_info=True)
    if info["missing_keys"]:  # a plain encoder (or a masked-LM): its classification head would start random
        raise DistilflowError(f"teacher classifier {name} has no trained classification head (missing "
                              f"{', '.join(sorted(info['missing_keys'])[:3])}): {fix}, not a base encoder")
    model.eval()
    config = model.config
    names = tuple(str(config.id2label[i]) for i in range(config.num_labels))
    return TeacherClassifier(name, model, load_tokenizer(name, fix), names, model_fingerprint(model))


def matched_to_teacher(user_task: UserTask, teacher: TeacherClassifier) -> UserTask:
    """The task with the teacher's label order (its rows' label indices renumbered to it), or one line why not."""
    data, theirs = user_task.label_names, teacher.label_names
    regression = user_task.task.is_regression
    if regression or len(theirs) == 1:
        if not (regression and len(theirs) == 1):
            raise DistilflowError(f"teacher classifier {teacher.name} has {len(theirs)} output(s) and task "
                                  f"{user_task.task.name} is {'a regression' if regression else 'a classification'}: "
                                  "give a teacher fine-tuned for this kind of task (or set the task's kind)")
        return user_task
    generic = [_GENERIC.fullmatch(name) for name in theirs]
    if all(generic):  # no names: only integer labels 0..n-1 can be matched, by value
        order = tuple(match.group(1) for match in generic)
        if set(order) != set(data):
            raise DistilflowError(f"teacher classifier {teacher.name}'s labels have no names ({', '.join(theirs)}) and "
                                  f"the data's are {', '.join(data)}: set id2label in its config.json to the data's "
                                  "label names, in the order it was trained with")
    else:
        order = theirs
        if set(order) != set(data):
            raise DistilflowError(f"teacher classifier {teacher.name}'s labels ({', '.join(theirs)}) are not the data's "
                                  f"({', '.join(data)}): give the teacher fine-tuned on these labels, or fix the label "
                                  "column")
    renumber = np.array([order.index(name) for name in data])  # data index -> the teacher's
    splits = {name: split.map(lambda batch: {"label": renumber[np.asarray(batch["label"])].tolist()}, batched=True)
              for name, split in user_task.splits.items()}
    return replace(user_task, task=replace(user_task.task, label_names=tuple(order)), splits=splits,
                   label_names=tuple(order))


def predict(teacher: TeacherClassifier, split: Dataset, text_columns: tuple[str, ...], max_length: int) -> np.ndarray:
    """The teacher's logits for every row, in order (batched; only the logits are kept: rows x labels floats)."""
    logits = []
    device = next(teacher.model.parameters()).device
    for start in range(0, len(split), PREDICT_BATCH):
        rows = split[start:start + PREDICT_BATCH]
        encoded = teacher.tokenizer(*[rows[column] for column in text_columns], truncation=True,
                                    max_length=max_length, padding=True, return_tensors="pt").to(device)
        with torch.no_grad():
            logits.append(teacher.model(**encoded).logits.float().cpu().numpy())
    return np.concatenate(logits) if logits else np.zeros((0, len(teacher.label_names)), dtype=np.float32)


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
