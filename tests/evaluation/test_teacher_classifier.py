"""Your fine-tuned teacher (issue 44, item 2): used as it is, its labels matched to the data's by name (its order
wins), any disagreement one line naming both; its logits for every row."""

import json

import numpy as np
import pytest
import torch
from transformers import BertForSequenceClassification

from distilflow.config import GlueConfig
from distilflow.config.tasks import TaskConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import SELECTION
from distilflow.evaluation.glue_runs import evaluate_task
from distilflow.evaluation.task_data import REPORT, load_user_task
from distilflow.evaluation.teacher_classifier import (
    load_teacher_classifier,
    matched_to_teacher,
    predict,
    teacher_baseline,
)
from tests.conftest import tiny_bert_config
from tests.evaluation.test_task_data import REVIEWS, _write


def _teacher(folder, tokenizer, labels):
    torch.manual_seed(0)
    config = tiny_bert_config(len(tokenizer), layers=2)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return load_teacher_classifier(str(folder))


def _task(tmp_path, rows=REVIEWS):
    files = {split: _write(tmp_path / f"{split}.csv", rows, ["sentence", "label"]) for split in ("train", "report")}
    return load_user_task("reviews", TaskConfig.model_validate(
        {"data": {"files": {k: str(v) for k, v in files.items()}}, "text": ["sentence"], "selection": {"holdout": 0.2}}))


def test_the_teachers_label_order_wins_and_the_rows_follow_it(tmp_path, tokenizer):
    task = _task(tmp_path)
    assert task.label_names == ("negative", "positive") and task.splits[REPORT]["label"][:2] == [1, 0]
    teacher = _teacher(tmp_path / "teacher", tokenizer, ["positive", "negative"])
    matched = matched_to_teacher(task, teacher)
    assert matched.label_names == ("positive", "negative")
    assert matched.splits[REPORT]["label"][:2] == [0, 1]  # "a fine film" is positive: the teacher's index 0
    logits = predict(teacher, matched.splits["train"], ("sentence",), max_length=16)
    assert logits.shape == (len(matched.splits["train"]), 2)
    with torch.no_grad():  # the same numbers as the model's own forward, row by row
        one = teacher.tokenizer(matched.splits["train"][0]["sentence"], return_tensors="pt")
        assert torch.allclose(teacher.model(**one).logits[0], torch.from_numpy(logits[0]), atol=1e-5)


def test_a_teacher_without_label_names_matches_integer_labels_only(tmp_path, tokenizer):
    generic = _teacher(tmp_path / "generic", tokenizer, ["LABEL_0", "LABEL_1"])
    (tmp_path / "n").mkdir()
    numbers = _task(tmp_path / "n", [(text, int(label == "positive")) for text, label in REVIEWS])
    assert matched_to_teacher(numbers, generic).label_names == ("0", "1")
    with pytest.raises(DistilflowError, match=r"labels have no names \(LABEL_0, LABEL_1\) and the data's are "
                                              r"negative, positive: set id2label"):
        matched_to_teacher(_task(tmp_path), generic)


def test_labels_that_disagree_are_one_line_naming_both(tmp_path, tokenizer):
    teacher = _teacher(tmp_path / "teacher", tokenizer, ["spam", "ham", "eggs"])
    with pytest.raises(DistilflowError) as raised:
        matched_to_teacher(_task(tmp_path), teacher)
    assert "labels (spam, ham, eggs) are not the data's (negative, positive)" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_teacher_is_scored_as_it_is_and_the_student_learns_from_its_targets_by_glues_code(
        tmp_path, tokenizer, teacher_with_head_dir):
    teacher = _teacher(tmp_path / "teacher", tokenizer, ["positive", "negative"])
    task = matched_to_teacher(_task(tmp_path), teacher)
    baseline = teacher_baseline(teacher, task, max_length=16)
    assert set(baseline.metrics) == {REPORT, SELECTION}
    report_logits = predict(teacher, task.splits[REPORT], ("sentence",), 16)
    assert baseline.metrics[REPORT]["accuracy"] == np.mean(report_logits.argmax(-1) == task.splits[REPORT]["label"])
    assert baseline.soft_targets.shape == (len(task.splits["train"]), 2)

    config = GlueConfig(epochs=1, batch_size=4, seeds=[1, 2], learning_rates=[1e-3], max_seq_length=16,
                        progress=False, distillation={"weight": 0.5, "temperature": 2.0})
    result = evaluate_task(str(teacher_with_head_dir), task.task, config, soft_targets=baseline.soft_targets,
                           keep_classifier=tmp_path / "student", splits=task.splits)
    assert [run["seed"] for run in result.runs] == [1, 2] and result.selection_score is not None
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["id2label"] == {"0": "positive", "1": "negative"}  # a served student answers with the names


def test_a_base_encoder_given_as_the_teacher_classifier_is_one_line(headless_teacher_dir):
    with pytest.raises(DistilflowError, match="has no trained classification head .* not a base encoder"):
        load_teacher_classifier(str(headless_teacher_dir))
