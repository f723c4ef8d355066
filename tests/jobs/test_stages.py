"""End to end at tiny scale: a head-less teacher gets a head, a student is distilled, MLflow has it all."""

import json

import mlflow
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer
from transformers import pipeline as hf_pipeline

from distilflow.base.provenance import flatten
from distilflow.config.load import validate_params
from distilflow.errors import DistilflowError
from distilflow.jobs import distill, evaluate, prepare, teacher
from tests.conftest import assert_layers_copied, run_stages, tiny_params


def test_distill_headless_teacher_end_to_end(params, in_store, tmp_path):
    result = run_stages(params)

    head_meta = json.loads((params.paths.teacher / "distilflow.json").read_text())
    assert head_meta["metrics"]["heldout_mlm_loss_after"] < head_meta["metrics"]["heldout_mlm_loss_before"]

    student = AutoModelForMaskedLM.from_pretrained(result.student_path)
    assert student.config.num_hidden_layers == 2 and result.teacher_layers == [0, 2]
    assert len(hf_pipeline("fill-mask", model=str(result.student_path))("the [MASK] of the house.")) == 5
    assert {"test_mlm_loss", "test_teacher_agreement", "val_mlm_loss"} <= set(result.metrics)
    assert not list((params.paths.checkpoints / "distill").glob("step_*.pt"))  # superseded by the saved student

    run = mlflow.get_run(result.run_id)
    logged = run.data.params
    for key, value in flatten(params.model_dump(mode="json")).items():
        assert logged[key] == str(value), key
    assert {"data_fingerprint", "teacher_fingerprint", "git_commit", "student_fingerprint"} <= set(run.data.tags)
    assert {"loss", "loss_ce", "loss_mlm", "loss_cos", "learning_rate", "tokens_per_second",
            "test_mlm_loss"} <= set(run.data.metrics)
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "loss")
    assert len(history) == params.distill.train.max_steps // params.distill.train.log_every
    model_id = json.loads((params.paths.student / "distilflow.json").read_text())["mlflow_model_id"]
    logged_model = mlflow.get_logged_model(model_id)  # the student, once, as this run's LoggedModel
    assert logged_model.source_run_id == result.run_id
    assert {m.key for m in logged_model.metrics} >= {"test_mlm_loss", "val_mlm_accuracy"}
    served = mlflow.pyfunc.load_model(f"models:/{model_id}")  # what `mlflow models serve` runs
    predictions = served.predict(["I completed writing my [MASK].", "the [MASK] of the house."])
    assert [len(top) for top in predictions] == [5, 5]
    assert [p.score for p in predictions[0]] == sorted((p.score for p in predictions[0]), reverse=True)
    assert str(tmp_path / "mlruns" / "artifacts") in run.info.artifact_uri


def test_distill_reads_only_its_declared_inputs(params):
    """The distill stage never rebuilds what the prepare and teacher stages own (DVC decides that)."""
    with pytest.raises(DistilflowError, match="no model in .* run `distilflow teacher` first"):
        distill.run(params)  # the teacher first: the student's shape is checked against its config
    prepare.run(params)
    teacher.run(params)
    prepared = params.model_copy(update={"paths": params.paths.model_copy(update={"prepared": params.paths.prepared.parent / "none"})})
    with pytest.raises(DistilflowError, match="no prepared corpus .* run `distilflow prepare` first"):
        distill.run(prepared)
    teacher_stamp = (params.paths.teacher / "model.safetensors").stat().st_mtime_ns
    prepared_stamp = (params.paths.prepared / "meta.json").stat().st_mtime_ns
    assert distill.run(params).student_path.is_dir()
    assert (params.paths.teacher / "model.safetensors").stat().st_mtime_ns == teacher_stamp
    assert (params.paths.prepared / "meta.json").stat().st_mtime_ns == prepared_stamp


def test_evaluate_requires_a_head(params, headless_teacher_dir):
    prepare.run(params)
    with pytest.raises(DistilflowError, match="no masked-LM head"):
        evaluate.run(params, str(headless_teacher_dir))


def test_mlm_only_baseline_runs_without_teacher_forward(params, in_store, monkeypatch):
    from distilflow.data.prepared import load_prepared
    from distilflow.train.mlm_metrics import masked_lm_metrics
    from distilflow.train.student import MaskedLMView
    from distilflow.train.trainer import Trainer

    raw = params.model_dump(mode="json")
    raw["distill"]["loss"].update(alpha_ce=0.0, alpha_cos=0.0, alpha_mlm=1.0)
    mlm_only = validate_params(raw)
    in_steps, forwards = [], []  # the depth of every encoder run inside a training step
    real_forward, real_step = MaskedLMView.forward, Trainer.optimizer_step
    monkeypatch.setattr(MaskedLMView, "forward", lambda self, *a, **k: (
        forwards.append(self.encoder.config.num_hidden_layers) if in_steps else None) or real_forward(self, *a, **k))
    monkeypatch.setattr(Trainer, "optimizer_step", lambda self, batch: (
        in_steps.append(1), real_step(self, batch), in_steps.clear())[1])
    result = run_stages(mlm_only)
    assert forwards and set(forwards) == {2}  # the 2-layer student only, never the 4-layer teacher
    assert set(mlflow.get_run(result.run_id).data.metrics) >= {"loss_mlm"}
    assert "loss_ce" not in mlflow.get_run(result.run_id).data.metrics
    # the reported held-out loss is the saved student's own, recomputed here
    student = AutoModelForMaskedLM.from_pretrained(result.student_path)
    tokenizer = AutoTokenizer.from_pretrained(result.student_path)
    recomputed = masked_lm_metrics(student, load_prepared(mlm_only.paths.prepared).split("test"), tokenizer)
    assert result.metrics["test_mlm_loss"] == pytest.approx(recomputed["mlm_loss"], rel=1e-5)


def test_a_headless_teacher_needs_no_head_when_no_term_reads_its_logits(params, in_store):
    """Hidden-state, attention and relation terms need only the encoder (issue 12): no head training."""
    raw = params.model_dump(mode="json")
    raw["distill"]["loss"].update(alpha_ce=0.0, alpha_mse=0.0, alpha_cos=1.0, alpha_hidden=1.0, alpha_relation=1.0)
    intermediate = validate_params(raw)
    result = run_stages(intermediate)
    meta = json.loads((intermediate.paths.teacher / "distilflow.json").read_text())
    assert meta["head_untrained"] and not meta["head_trained"] and meta["metrics"] == {}
    again = teacher.run(intermediate)  # the folder is complete: copied again, and says its head is untrained
    assert again.head == "untrained" and "untrained" in again.describe()
    stages = {run.data.tags.get("stage") for run in mlflow.search_runs(output_format="list", search_all_experiments=True)}
    assert "teacher_head" not in stages and "distill" in stages  # nothing trained a head
    assert {"loss_hidden", "loss_relation", "loss_mlm"} <= set(mlflow.get_run(result.run_id).data.metrics)
    assert "loss_ce" not in mlflow.get_run(result.run_id).data.metrics


def test_head_training_is_reproducible(tmp_path, small_corpus, headless_teacher_dir):
    """The missing head is initialised on load: seeded, two runs give the same teacher."""
    fingerprints = []
    for run in ("first", "second"):
        raw = tiny_params(tmp_path / run, small_corpus, headless_teacher_dir)
        raw["tracking"]["enabled"] = False
        params = validate_params(raw)
        torch.manual_seed(len(run))  # whatever the global RNG holds before
        prepare.run(params)
        fingerprints.append(teacher.run(params).fingerprint)
    assert fingerprints[0] == fingerprints[1]


def test_a_paths_key_pointed_at_a_users_folder_deletes_nothing(params, tmp_path):
    users = tmp_path / "my_models"
    (users / "bert").mkdir(parents=True)
    (users / "bert" / "model.safetensors").write_text("the user's model")
    for key in ("prepared", "student"):
        changed = params.model_copy(update={"paths": params.paths.model_copy(update={key: users})})
        with pytest.raises(DistilflowError, match="not written by distilflow"):
            run_stages(changed)
        assert (users / "bert" / "model.safetensors").read_text() == "the user's model"


def test_zero_steps_saves_the_copied_teacher_layers_untrained(params, in_store):
    """max_steps 0: the baseline that shows what distilling adds -- the chosen teacher layers, as they are."""
    raw = params.model_dump(mode="json")
    raw["distill"]["train"]["max_steps"] = 0
    result = run_stages(validate_params(raw))
    assert result.teacher_layers == [0, 2]
    assert_layers_copied(AutoModelForMaskedLM.from_pretrained(result.student_path),
                         AutoModelForMaskedLM.from_pretrained(params.paths.teacher), result.teacher_layers)
    assert {"test_mlm_loss", "val_mlm_loss"} <= set(result.metrics)  # measured on the copy as it is
    assert "loss" not in mlflow.get_run(result.run_id).data.metrics  # no training step was taken


def test_a_diverged_run_never_replaces_the_last_good_student(params, in_store):
    """Issue 23 (`--set distill.train.learning_rate=1e6`). The first steps move the weights to ~1e5; a layer's
    LayerNorm then gets inputs of ~1e20, whose variance overflows fp32: every loss term is NaN from then on,
    while the weights stay finite. At this size 4 of the 6 steps are NaN, under max_nonfinite_steps (5), and the
    weights check passed: the diverged student replaced the good one. A NaN training or validation loss is
    now refused before anything is saved."""
    from distilflow.train.resume import ResumePolicy

    run_stages(params)
    student = params.paths.student / "model.safetensors"
    good_weights, good_metrics = student.read_bytes(), (params.paths.metrics / "distill.json").read_text()
    diverging = params.model_copy(update={"distill": params.distill.model_copy(update={
        "train": params.distill.train.model_copy(update={"learning_rate": 1e6})})})
    with pytest.raises(DistilflowError, match=r"training diverged: .*(nan|NaN)"):
        distill.run(diverging, ResumePolicy(restart=True))
    assert student.read_bytes() == good_weights
    assert (params.paths.metrics / "distill.json").read_text() == good_metrics
    last = mlflow.search_runs(search_all_experiments=True, filter_string="tags.stage = 'distill'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    assert last["status"].iloc[0] == "FAILED"
