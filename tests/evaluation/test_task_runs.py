"""A user's task scored (issue 44, items 2-3): the teacher classifier as it is, and a student fine-tuned over seeds
from its soft targets, through GLUE's fine-tuning and metrics."""

import json

import numpy as np

from distilflow.config import GlueConfig
from distilflow.evaluation.glue_data import SELECTION
from distilflow.evaluation.task_data import REPORT
from distilflow.evaluation.task_runs import student_runs, teacher_baseline
from distilflow.evaluation.teacher_classifier import matched_to_teacher, predict
from tests.evaluation.test_teacher_classifier import _task, _teacher


def test_the_teacher_is_scored_as_it_is_and_the_student_learns_from_its_targets_over_seeds(
        tmp_path, tokenizer, teacher_with_head_dir):
    teacher = _teacher(tmp_path / "teacher", tokenizer, ["positive", "negative"])
    task = matched_to_teacher(_task(tmp_path), teacher)
    baseline = teacher_baseline(teacher, task, max_length=16)
    assert set(baseline.metrics) == {REPORT, SELECTION} and 0 <= baseline.metrics[REPORT]["accuracy"] <= 1
    report_logits = predict(teacher, task.splits[REPORT], ("sentence",), 16)
    assert baseline.metrics[REPORT]["accuracy"] == np.mean(report_logits.argmax(-1) == task.splits[REPORT]["label"])
    assert baseline.soft_targets.shape == (len(task.splits["train"]), 2)

    config = GlueConfig(epochs=1, batch_size=4, seeds=[1, 2], learning_rates=[1e-3], max_seq_length=16,
                        progress=False, distillation={"weight": 0.5, "temperature": 2.0})
    result = student_runs(str(teacher_with_head_dir), task, config, baseline.soft_targets, save_to=tmp_path / "student")
    assert [run["seed"] for run in result.runs] == [1, 2] and result.selection_score is not None
    saved = json.loads((tmp_path / "student.lr0.001" / "config.json").read_text())
    assert saved["id2label"] == {"0": "positive", "1": "negative"}  # a served student answers with the names
