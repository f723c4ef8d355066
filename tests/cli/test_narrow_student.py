"""A student narrower than its teacher through the CLI's stages, as dvc.yaml runs them: distilled with the
hidden-state cosine through a projection, saved as a stock masked-LM without it, then fine-tuned on GLUE,
exported and registered with its shape."""

import json
import sys

import mlflow
import pytest
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, pipeline

from distilflow.cli import main
from distilflow.train.student import PROJECTION
from tests.cli.test_app import _params_file
from tests.conftest import tiny_glue_release, tiny_params


def _ok(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["distilflow", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err[-3000:]


def test_a_narrower_student_is_a_stock_model_evaluated_exported_and_registered(tmp_path, monkeypatch, capsys,
                                                                               small_corpus, headless_teacher_dir):
    raw = tiny_params(tmp_path, small_corpus, headless_teacher_dir)
    raw["student"].update(hidden_size=16)  # the tiny teacher: 32 wide, 2 heads of 16
    raw["distill"]["loss"] = {"alpha_hidden": 1.0}  # the cosine and TinyBERT's hidden MSE, both across widths
    raw["glue"] = {"source": str(tiny_glue_release(tmp_path / "glue_release")), "tasks": ["rte"], "epochs": 1,
                   "batch_size": 8, "max_seq_length": 32, "progress": False,
                   "latency": {"batch_sizes": [1], "repeats": 1}}
    raw["export"] = {"latency": {"batch_sizes": [1], "repeats": 1}}
    raw["registry"] = {"model_name": "narrow", "promotion": {"min_retention": 0.0}}
    params = _params_file(tmp_path, raw)
    for command in (["distill", "--with-inputs"], ["glue-task", "rte"], ["glue-report"], ["export"], ["register"]):
        _ok(monkeypatch, capsys, *command, "--params", params)

    folder = tmp_path / "student"
    assert not [key for key in load_file(folder / "model.safetensors") if PROJECTION in key]
    student = AutoModelForMaskedLM.from_pretrained(folder)
    assert (student.config.hidden_size, student.config.num_attention_heads, student.config.num_hidden_layers) == (16, 1, 2)
    assert len(pipeline("fill-mask", model=str(folder))("the [MASK] of the house.")) == 5
    glue = json.loads((tmp_path / "metrics" / "glue.json").read_text())
    assert glue["parameter_ratio"] < 0.75  # student / teacher parameters
    assert "rte" in glue["models"]["student"]["scores"]
    assert json.loads((tmp_path / "metrics" / "export.json").read_text())["onnx_fp32_top1_agreement"] == 1.0

    client = mlflow.MlflowClient(raw["tracking"]["tracking_uri"])
    version = client.get_model_version_by_alias("narrow", "challenger")
    assert version.tags["student_shape"] == "2x16"
    distill_run = client.get_run(json.loads((folder / "distilflow.json").read_text())["mlflow_run_id"])
    assert {"loss_cos", "loss_hidden"} <= set(distill_run.data.metrics)
