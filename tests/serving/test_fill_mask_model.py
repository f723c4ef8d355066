"""The registered student answers real HTTP requests through MLflow's scoring server, with the top-k
predictions and their scores (the pyfunc in distilflow/serving/fill_mask_model.py)."""

import json
import urllib.request
from pathlib import Path

import mlflow
import pytest
import torch
from transformers import BertForMaskedLM, pipeline

from distilflow.config import PromotionConfig, RegistryConfig, TrackingConfig
from distilflow.ops import registry
from distilflow.ops.local_server import free_port, local_server, scoring_server_command
from distilflow.ops.tracking import Tracking
from tests.conftest import tiny_bert_config

SENTENCE = "I completed writing my [MASK]."


@pytest.fixture
def champion(tmp_path, tokenizer, monkeypatch):
    """A tiny student distilled (logged), registered and promoted, as the pipeline leaves it."""
    config = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", experiment="serving",
                            artifact_root=tmp_path / "mlruns" / "artifacts", system_metrics=False)
    registry_config = RegistryConfig(model_name="served-student", promotion=PromotionConfig(min_retention=0.0))
    folder = tmp_path / "student"
    torch.manual_seed(3)
    BertForMaskedLM(tiny_bert_config(len(tokenizer), layers=1)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with Tracking(config) as distilling, distilling.run("distill") as run:
        model_id = distilling.log_student_model(folder, registry_config.input_example, registry_config.top_k, {})
    (folder / "distilflow.json").write_text(json.dumps({"fingerprint": "served", "mlflow_model_id": model_id}))
    with Tracking(config) as registering:
        version, _ = registry.register_student(registering, registry_config, folder, run.info.run_id,
                                               {"glue_score": "0.6", "glue_retention": "0.9"})
        registry.promote(registry_config.model_name, str(version.version))
    return config, folder


@pytest.fixture
def scoring_server(champion):
    config, _ = champion
    port = free_port()
    with local_server(scoring_server_command("models:/served-student@champion", port), "/ping", port,
                      env={"MLFLOW_TRACKING_URI": config.tracking_uri}) as url:
        yield url


def _ask(url: str, body: dict) -> list:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]


def test_the_champion_answers_a_masked_sentence_over_http(scoring_server, champion):
    _, folder = champion
    predictions = _ask(scoring_server, {"inputs": [SENTENCE, "the [MASK] of the house."], "params": {"top_k": 3}})
    assert [len(top) for top in predictions] == [3, 3]
    # the student's own top 3 at the mask, with its probabilities, in order
    expected = pipeline("fill-mask", model=str(folder))(SENTENCE, top_k=3)
    assert [p["token"] for p in predictions[0]] == [e["token_str"].strip() for e in expected]
    assert [p["score"] for p in predictions[0]] == pytest.approx([e["score"] for e in expected], rel=1e-4)
    assert all(p["sequence"].startswith("i completed writing my") for p in predictions[0])
    assert len(_ask(scoring_server, {"inputs": [SENTENCE]})[0]) == 5  # registry.top_k by default


def test_the_served_model_is_the_pyfunc_with_the_student_folder(champion):
    config, _ = champion
    with Tracking(config, for_writing=False):
        local = Path(mlflow.artifacts.download_artifacts("models:/served-student@champion"))
    assert (local / "artifacts" / "student" / "model.safetensors").is_file()  # from_pretrained loads it
    assert "python_function" in (local / "MLmodel").read_text()
