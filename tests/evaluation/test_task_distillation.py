"""Task-specific distillation: the soft-target loss, its path through the collator and Trainer, and the
GLUE stage's use of the teacher baseline's cached soft targets."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, TrainingArguments

from distilflow.errors import DistilflowError
from distilflow.evaluation import finetune, glue_runs
from distilflow.evaluation.glue_data import get_task
from distilflow.evaluation.task_distillation import (
    TEACHER_COLUMN,
    TaskDistillationTrainer,
    load_soft_targets,
    save_soft_targets,
    soft_target_loss,
)
from distilflow.jobs import glue_task


def test_soft_target_loss_is_the_tempered_kl_and_mse_for_regression():
    teacher = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    assert soft_target_loss(teacher.clone(), teacher, temperature=2.0, regression=False).item() == pytest.approx(0, abs=1e-6)
    student = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    expected = 0.0
    for row in teacher:
        p = torch.softmax(row / 2.0, dim=-1)
        expected += float((p * (p.log() - math.log(0.5))).sum())
    expected = expected / 2 * 2.0**2  # batch mean, times T²
    assert soft_target_loss(student, teacher, 2.0, False).item() == pytest.approx(expected, rel=1e-5)
    scores = torch.tensor([[1.0], [3.0]])
    assert soft_target_loss(scores, torch.tensor([[2.0], [3.0]]), 5.0, True).item() == pytest.approx(0.5)


def test_the_trainer_mixes_hard_and_soft_loss_by_weight(tmp_path, teacher_with_head_dir, tokenizer):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(teacher_with_head_dir, num_labels=2)
    features = [dict(tokenizer("a short one"), labels=0), dict(tokenizer("and a longer second sentence"), labels=1)]
    with torch.no_grad():
        batch = DataCollatorWithPadding(tokenizer)(features)
        own_logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    features = [{**feature, TEACHER_COLUMN: logits.tolist()} for feature, logits in zip(features, own_logits)]
    batch = DataCollatorWithPadding(tokenizer)(features)  # the collator pads the text and keeps the logits
    assert batch[TEACHER_COLUMN].shape == (2, 2)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    losses = {}
    for weight in (0.0, 0.25, 1.0):
        trainer = TaskDistillationTrainer(model=model, args=args, weight=weight, temperature=2.0, regression=False)
        with torch.no_grad():
            losses[weight] = trainer.compute_loss(model, dict(batch)).item()
    hard = losses[0.0]
    assert hard > 0.1
    assert losses[1.0] == pytest.approx(0.0, abs=1e-5)  # the teacher's logits are the model's own: no KL
    assert losses[0.25] == pytest.approx(0.75 * hard, rel=1e-5)
    without_teacher = {k: v for k, v in batch.items() if k != TEACHER_COLUMN}  # an evaluation batch
    with torch.no_grad():
        assert trainer.compute_loss(model, without_teacher).item() == pytest.approx(hard, rel=1e-5)


def test_soft_targets_that_do_not_fit_the_training_set_are_refused(tmp_path):
    path = tmp_path / "rte-key.soft_targets.npy"
    save_soft_targets(path, np.zeros((5, 2)))
    assert load_soft_targets(path, 5).shape == (5, 2)
    with pytest.raises(DistilflowError, match="cover 5 examples, the training set has 6: delete the file"):
        load_soft_targets(path, 6)
    path.write_bytes(b"not numpy")
    with pytest.raises(DistilflowError, match="unreadable"):
        load_soft_targets(path, 5)


@pytest.fixture
def params(make_params, teacher_with_head_dir):
    return make_params(teacher_with_head_dir, glue={
        "tasks": ["stsb"], "max_train_examples": 24, "epochs": 1, "batch_size": 8, "seeds": [1],
        "learning_rates": [1e-3], "max_seq_length": 32, "progress": False,
        "distillation": {"weight": 0.5, "temperature": 2.0, "epochs": None}})  # None: glue.epochs


@pytest.fixture
def fine_tunings(teacher_with_head_dir, monkeypatch) -> list[tuple]:
    """Every real fine-tuning the GLUE stage runs, as (model, its GLUE config, options); the pipeline's
    student is the tiny teacher."""
    fine_tuned = []
    real = finetune.finetune_and_evaluate

    def recording(model, task, splits, config, seed, lr, **options):
        fine_tuned.append((model, config, options))
        return real(model, task, splits, config, seed, lr, **options)

    monkeypatch.setattr(glue_runs, "finetune_and_evaluate", recording)
    monkeypatch.setattr(glue_task, "pipeline_models", lambda p: {"student": str(teacher_with_head_dir),
                                                                 "teacher": p.teacher.model})
    return fine_tuned


def test_the_glue_stage_distils_the_student_from_the_cached_teacher(params, teacher_with_head_dir, fine_tunings):
    def calls():  # (model, with soft targets, predicting the training set) of each fine-tuning
        return [(model, options.get("soft_targets") is not None, options.get("predict_train", False))
                for model, _, options in fine_tunings]

    distilled = glue_task.run(params, "stsb")["student"]
    teacher = params.teacher.model
    # the teacher once (keeping its training-set predictions), then the student with them
    assert calls() == [(teacher, False, True), (str(teacher_with_head_dir), True, False)]
    cached = sorted((params.paths.glue / "cache").glob("stsb-*.soft_targets.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (24, 1)

    fine_tunings.clear()
    plain = glue_task.run(params.model_copy(update={"glue": params.glue.model_copy(
        update={"distillation": params.glue.distillation.model_copy(update={"weight": 0.0})})}), "stsb")["student"]
    assert calls() == [(str(teacher_with_head_dir), False, False)]  # the teacher from the cache, no soft targets
    assert distilled.metrics != plain.metrics  # the soft targets changed what the student learnt

    cached[0].unlink()  # an older cache: the result without its soft targets
    fine_tunings.clear()
    glue_task.run(params, "stsb")
    assert calls() == [(teacher, False, True), (str(teacher_with_head_dir), True, False)]
    assert cached[0].is_file()


def test_the_student_fine_tunes_for_its_own_epochs_while_distilling(params, fine_tunings):
    """glue.distillation.epochs lengthens the student's run only; the teacher's baseline (and its cache key)
    keep glue.epochs."""
    def runs():  # (with soft targets, epochs) of each fine-tuning
        return [(options.get("soft_targets") is not None, config.epochs) for _, config, options in fine_tunings]

    longer = params.model_copy(update={"glue": params.glue.model_copy(
        update={"distillation": params.glue.distillation.model_copy(update={"epochs": 2.0})})})
    glue_task.run(longer, "stsb")
    assert runs() == [(False, 1.0), (True, 2.0)]  # the teacher at glue.epochs, the student at its own
    fine_tunings.clear()
    glue_task.run(params, "stsb")
    assert runs() == [(True, 1.0)]  # the same teacher baseline, from the cache

    fine_tunings.clear()  # without the teacher's targets: glue.student_epochs (§12's RTE pair: teacher 10, student 3)
    alone = params.glue.model_copy(update={"student_epochs": 3.0, "distillation": params.glue.distillation.model_copy(
        update={"weight": 0.0, "epochs": 2.0})})
    glue_task.run(params.model_copy(update={"glue": alone}), "stsb")
    assert runs() == [(False, 3.0)]  # the teacher's baseline from the cache: its glue.epochs, its key unchanged


def test_a_recorded_baseline_is_reused_on_a_new_machine(params, teacher_with_head_dir, tmp_path, monkeypatch):
    """`glue --record` puts the teacher's baseline in the repository; another checkout (empty cache) reads it."""
    from distilflow.jobs import glue as glue_job

    records = tmp_path / "records"
    params = params.model_copy(update={"paths": params.paths.model_copy(update={"glue_baselines": records})})
    first = glue_job.run(params, str(teacher_with_head_dir), params.teacher.model, "stsb", record=True)
    recorded = sorted(path.name for path in records.iterdir())
    assert len(recorded) == 2 and recorded[0].endswith(".json") and recorded[1].endswith(".soft_targets.npy")

    calls = []
    monkeypatch.setattr(glue_runs, "finetune_and_evaluate", lambda model, *a, **k: calls.append(model) or pytest.fail())
    elsewhere = params.model_copy(update={"paths": params.paths.model_copy(update={"glue": tmp_path / "new_machine"})})
    teacher_result = glue_runs.evaluate_task(params.teacher.model, get_task("stsb"), elsewhere.glue,
                                             cache_dir=elsewhere.paths.glue / "cache", records_dir=records)
    assert calls == [] and teacher_result.score == first.models["teacher"].scores["stsb"]
    targets = glue_runs.baseline_soft_targets(params.teacher.model, get_task("stsb"), elsewhere.glue,
                                              elsewhere.paths.glue / "cache", records)
    assert targets.shape == (24, 1) and calls == []  # the soft targets came with it


def test_a_model_alone_can_be_recorded_as_a_baseline(params, tmp_path, monkeypatch):
    """`glue --model T --record` (no --teacher): T's own baseline, as the pipeline's GLUE stages look it up."""
    from distilflow.jobs import glue as glue_job

    records = tmp_path / "records"
    params = params.model_copy(update={"paths": params.paths.model_copy(update={"glue_baselines": records})})
    report = glue_job.run(params, params.teacher.model, None, "stsb", record=True)
    monkeypatch.setattr(glue_runs, "finetune_and_evaluate", lambda *a, **k: pytest.fail("not from the record"))
    elsewhere = tmp_path / "new_machine" / "cache"
    result = glue_runs.evaluate_task(params.teacher.model, get_task("stsb"), params.glue, cache_dir=elsewhere,
                                     records_dir=records)
    assert result.score == report.models["model"].scores["stsb"]
