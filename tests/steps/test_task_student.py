"""Where a task's student starts (issue 44, item 3): a copy of the teacher classifier with half its layers, its
classification head and label names included, made once, for BERT and for ModernBERT and DeBERTa-v2 teachers alike
(issue 44, item 6: the task path); or the distilled student, one line when it is missing."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from distilflow.config import StudentConfig, TaskConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.teacher_classifier import load_teacher_classifier
from distilflow.steps.task_student import student_start
from tests.cli.test_teacher_families import _config as family_config
from tests.evaluation.test_teacher_classifier import _teacher

TASK = {"data": {"files": {"train": "t.csv", "report": "r.csv"}}, "text": ["sentence"], "teacher_classifier": "t"}


def test_the_student_is_the_teacher_classifier_with_half_its_layers_and_its_head(tmp_path, tokenizer):
    teacher = _teacher(tmp_path / "teacher", tokenizer, ["positive", "negative"])  # 2 layers
    folder = student_start(TaskConfig.model_validate(TASK), teacher, StudentConfig(), tmp_path / "unused",
                           tmp_path / "start", seed=0)
    student = AutoModelForSequenceClassification.from_pretrained(folder)
    assert student.config.num_hidden_layers == 1 and student.config.id2label == {0: "positive", 1: "negative"}
    assert torch.equal(student.classifier.weight, teacher.model.classifier.weight)
    [kept] = json.loads((folder / "distilflow.json").read_text())["teacher_layers"]  # student.layers' rule
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight,
                       teacher.model.bert.encoder.layer[kept].output.dense.weight)
    made = (folder / "model.safetensors").stat().st_mtime_ns
    student_start(TaskConfig.model_validate(TASK), teacher, StudentConfig(), tmp_path / "unused", tmp_path / "start", 0)
    assert (folder / "model.safetensors").stat().st_mtime_ns == made  # made once per teacher and shape


def test_the_distilled_student_must_be_there(tmp_path, tokenizer):
    teacher = _teacher(tmp_path / "teacher", tokenizer, ["positive", "negative"])
    with pytest.raises(DistilflowError, match="run `distilflow distill` first"):
        student_start(TaskConfig.model_validate({**TASK, "student": "distilled"}), teacher, StudentConfig(),
                      tmp_path / "student", tmp_path / "start", seed=0)


@pytest.mark.parametrize("family", ["modernbert", "deberta-v2"])
def test_a_modernbert_or_deberta_teacher_classifier_gives_a_half_depth_student_of_its_family(family, tmp_path,
                                                                                             tokenizer):
    config = family_config(family, tokenizer)  # 4 layers, random weights, no download
    config.num_labels, config.id2label, config.label2id = 2, {0: "no", 1: "yes"}, {"no": 0, "yes": 1}
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    teacher = load_teacher_classifier(str(tmp_path / "teacher"))

    folder = student_start(TaskConfig.model_validate(TASK), teacher, StudentConfig(), tmp_path / "unused",
                           tmp_path / "start", seed=0)
    student = AutoModelForSequenceClassification.from_pretrained(folder)
    assert student.config.model_type == family and student.config.num_hidden_layers == 2
    assert student.config.id2label == {0: "no", 1: "yes"}
    head = dict(teacher.model.named_parameters())
    copied = [name for name, weight in student.named_parameters() if "layer" not in name and name in head
              and torch.equal(weight, head[name])]
    assert len(copied) == len([name for name, _ in student.named_parameters() if "layer" not in name])  # all but layers
    batch = tokenizer(["a good film", "a dull one"], return_tensors="pt", padding=True)
    assert student(**batch).logits.shape == (2, 2)
