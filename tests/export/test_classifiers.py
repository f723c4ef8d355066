"""The student's GLUE classifiers exported: each format scored on the dev set as the GLUE stage scores it, the
fp32 export matching PyTorch, and segment ids fed to a pair task's classifier."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from distilflow.evaluation.glue_data import compute_metrics, get_task, load_task, task_score
from distilflow.evaluation.glue_results import classifier_folder
from distilflow.export import classifiers
from distilflow.jobs import export
from tests.conftest import run_stages


@pytest.fixture
def params(make_params):
    """Random classifiers (not fine-tuned): int8 may move their near-chance scores either way, so the GLUE-drop
    limit is off here; tests/export/test_checks.py checks it."""
    return make_params(export={"latency": {"batch_sizes": [1, 4], "seq_length": 16, "repeats": 2},
                               "max_int8_glue_drop": 1.0})


def test_the_glue_classifiers_are_exported_scored_and_timed(params, tokenizer):
    run_stages(params)
    params = params.model_copy(update={"glue": params.glue.model_copy(update={"tasks": ["rte", "stsb"],
                                                                              "max_seq_length": 32})})
    for task, labels in (("rte", 2), ("stsb", 1)):  # as the GLUE stages keep them (here not fine-tuned)
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(params.paths.student, num_labels=labels)
        model.save_pretrained(classifier_folder(params.paths.glue, task))
        tokenizer.save_pretrained(classifier_folder(params.paths.glue, task))
    metrics = export.run(params).metrics
    for task in ("rte", "stsb"):
        files = params.paths.export / "classifiers" / task
        assert (files / "model.onnx").is_file() and (files / "model.int8.onnx").is_file()
        assert metrics[f"classifier_{task}_onnx_fp32_max_abs_logit_diff"] < 1e-4
        assert metrics[f"classifier_{task}_score_onnx_fp32"] == pytest.approx(metrics[f"classifier_{task}_score_pytorch"],
                                                                              abs=1e-4)
        # the int8 score is the task's metric on the int8 file's own logits over the dev set
        glue_task = get_task(task)
        dev = classifiers.dev_set(glue_task, load_task(glue_task, params.glue.source)[""], tokenizer, 32)
        int8 = classifiers.onnx_logits(files / "model.int8.onnx", dev)
        assert metrics[f"classifier_{task}_score_onnx_int8"] == pytest.approx(
            task_score(glue_task, {"": compute_metrics(glue_task, int8, dev.labels)}))
        if task == "rte":  # the share of dev rows where int8 predicts PyTorch's label
            model = AutoModelForSequenceClassification.from_pretrained(classifier_folder(params.paths.glue, task))
            agreement = (int8.argmax(-1) == classifiers.pytorch_logits(model, dev).argmax(-1)).mean()
            assert metrics["classifier_rte_onnx_int8_label_agreement"] == pytest.approx(agreement)
    assert "classifier_stsb_onnx_int8_label_agreement" not in metrics  # a regression has no label
    assert metrics["classifier_glue_score_pytorch"] == pytest.approx(
        (metrics["classifier_rte_score_pytorch"] + metrics["classifier_stsb_score_pytorch"]) / 2)
    assert metrics["classifier_size_mb_onnx_int8"] < 0.5 * metrics["classifier_size_mb_onnx_fp32"]
    assert all(metrics[f"classifier_latency_ms_b4_{key}"] > 0 for key in ("pytorch", "onnx_fp32", "onnx_int8"))
    table = (params.paths.export / "export.md").read_text()
    assert "## The student's GLUE classifiers" in table and "| ONNX int8 (dynamic) |" in table


def test_a_pair_classifier_is_exported_with_the_segment_ids_it_was_fine_tuned_on(params, teacher_with_head_dir, tokenizer,
                                                                                 tmp_path):
    """Issue 24: the exported RTE/MRPC classifiers were fed no token_type_ids (export scored RTE 52.0 where the
    GLUE stage scored 52.3 for the same classifier). Fine-tuned here on sentence pairs, the classifier must give the
    export stage's PyTorch and ONNX checks the logits, and the score, that the GLUE stage gave it."""
    from distilflow.ops.tracking import Tracking
    from distilflow.steps.glue_task import tracked_task_run
    from tests.conftest import HUB

    params = params.model_copy(update={"glue": params.glue.model_copy(update={
        "source": str(HUB / "nyu-mll" / "glue"), "tasks": ["rte"], "max_train_examples": 32, "epochs": 1,
        "batch_size": 8, "max_seq_length": 32, "seeds": [1], "progress": False})})
    task = get_task("rte")
    paired = tmp_path / "paired"  # segment B far from segment A, so that a missing token_type_ids shows
    model = AutoModelForSequenceClassification.from_pretrained(teacher_with_head_dir, num_labels=2)
    with torch.no_grad():
        model.bert.embeddings.token_type_embeddings.weight[1] = torch.randn(
            model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(paired)
    tokenizer.save_pretrained(paired)
    kept = classifier_folder(params.paths.glue, "rte")
    with Tracking(params.tracking) as tracking:
        result = tracked_task_run(params, tracking, "student", str(paired), task, keep_classifier=kept)
    glue = params.glue
    metrics = classifiers.export_task_classifiers(glue.tasks, glue.source, glue.max_seq_length, params.paths.glue,
                                                  params.export, params.paths.export / "classifiers").metrics
    assert metrics["classifier_rte_score_pytorch"] == result.score  # one classifier, one score

    model = AutoModelForSequenceClassification.from_pretrained(kept).eval()
    dev_rows = load_task(task, params.glue.source)[""]
    dev = classifiers.dev_set(task, dev_rows, tokenizer, 32)
    with torch.inference_mode():  # as fine-tuning computes them: every tokenizer output, segment ids included
        encoded = tokenizer(list(dev_rows["sentence1"]), list(dev_rows["sentence2"]), truncation=True, max_length=32,
                            padding=True, return_tensors="pt")
        reference = model(**encoded).logits.numpy()
    assert np.abs(classifiers.pytorch_logits(model, dev) - reference).max() < 1e-5
    exported = params.paths.export / "classifiers" / "rte" / classifiers.FP32
    assert np.abs(classifiers.onnx_logits(exported, dev) - reference).max() < 1e-4
    import onnx

    assert [i.name for i in onnx.load(str(exported)).graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
