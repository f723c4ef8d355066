"""The edge export: ONNX fp32 matches PyTorch, int8 is smaller and close, both measured; an export
that drifts past the tolerance is refused and the previous one stays."""

import pytest

from distilflow.errors import DistilflowError
from distilflow.jobs import export
from tests.conftest import run_stages


@pytest.fixture
def params(make_params):
    return make_params(export={"latency": {"batch_sizes": [1, 4], "seq_length": 16, "repeats": 2},
                               "max_int8_accuracy_drop": 1.0, "max_int8_glue_drop": 1.0})


def test_export_checks_measures_and_refuses_a_drifting_model(params):
    run_stages(params)
    result = export.run(params)
    folder = params.paths.export
    assert {"student.onnx", "student.int8.onnx", "export.json", "export.md"} <= {p.name for p in folder.iterdir()}
    metrics = result.metrics
    assert metrics["onnx_fp32_max_abs_logit_diff"] < 1e-4 and metrics["onnx_fp32_top1_agreement"] == 1.0
    assert metrics["onnx_fp32_accuracy_onnx"] == metrics["onnx_fp32_accuracy_pytorch"]
    assert metrics["onnx_int8_max_abs_logit_diff"] > metrics["onnx_fp32_max_abs_logit_diff"]  # really quantized
    assert metrics["size_mb_student_onnx_int8"] < 0.5 * metrics["size_mb_student_onnx_fp32"]
    assert metrics["onnx_fp32_positions"] > 10
    for key in ("teacher_pytorch", "student_pytorch", "student_onnx_fp32", "student_onnx_int8"):
        assert metrics[f"latency_ms_b4_{key}"] > 0 and metrics[f"latency_iqr_ms_b4_{key}"] >= 0, key
    table = (folder / "export.md").read_text()
    assert "| student (fill-mask) | ONNX int8 (dynamic) |" in table and "vocabulary head" in table
    assert "interquartile range" in table and "threads on" in table
    assert (params.paths.metrics / "export.json").is_file()

    before = (folder / "student.onnx").read_bytes()
    strict = params.model_copy(update={"export": params.export.model_copy(update={"max_abs_logit_diff": 1e-12})})
    with pytest.raises(DistilflowError, match=r"ONNX fp32 export drifts from PyTorch: max \|Δ logit\|"):
        export.run(strict)
    assert (folder / "student.onnx").read_bytes() == before  # nothing replaced
    assert not list(folder.parent.glob("export.tmp*"))


def test_the_glue_classifiers_are_exported_scored_and_timed(params, tokenizer):
    import torch
    from transformers import AutoModelForSequenceClassification

    from distilflow.evaluation.glue_results import classifier_folder

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
        assert -1.0 <= metrics[f"classifier_{task}_score_onnx_int8"] <= 1.0
    assert 0.5 <= metrics["classifier_rte_onnx_int8_label_agreement"] <= 1.0
    assert "classifier_stsb_onnx_int8_label_agreement" not in metrics  # a regression has no label
    assert metrics["classifier_glue_score_pytorch"] == pytest.approx(
        (metrics["classifier_rte_score_pytorch"] + metrics["classifier_stsb_score_pytorch"]) / 2)
    assert metrics["classifier_size_mb_onnx_int8"] < 0.5 * metrics["classifier_size_mb_onnx_fp32"]
    assert all(metrics[f"classifier_latency_ms_b4_{key}"] > 0 for key in ("pytorch", "onnx_fp32", "onnx_int8"))
    table = (params.paths.export / "export.md").read_text()
    assert "## The student's GLUE classifiers" in table and "| ONNX int8 (dynamic) |" in table

    lenient = params.model_copy(update={"export": params.export.model_copy(update={"max_int8_glue_drop": 0.0})})
    if metrics["classifier_glue_score_pytorch"] > metrics["classifier_glue_score_onnx_int8"]:
        with pytest.raises(DistilflowError, match="int8 classifiers lose .* GLUE points"):
            export.run(lenient)


def test_a_pair_classifier_is_exported_with_the_segment_ids_it_was_fine_tuned_on(params, teacher_with_head_dir, tokenizer,
                                                                                 tmp_path):
    """Issue 24: the exported RTE/MRPC classifiers were fed no token_type_ids (export scored RTE 52.0 where the
    GLUE stage scored 52.3 for the same classifier). Fine-tuned here on sentence pairs, the classifier must give the
    export stage's PyTorch and ONNX checks the logits, and the score, that the GLUE stage gave it."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification

    from distilflow.evaluation.glue_data import get_task, load_task
    from distilflow.evaluation.glue_results import classifier_folder
    from distilflow.export import classifiers
    from distilflow.jobs.glue_task import tracked_task_run
    from distilflow.ops.tracking import Tracking
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
    metrics = export.export_classifiers(params, params.paths.export / "classifiers")
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
