"""A task's student classifier served (issue 44, item 4): a text or a pair in, the label's name and every label's
probability out, from the int8 ONNX file through ONNX Runtime (PyTorch when there is none), also over HTTP
through MLflow's scoring server."""

import json
import urllib.request

import mlflow
import numpy as np
import pytest
import torch
from transformers import BertForSequenceClassification

from distilflow.config import TrackingConfig
from distilflow.export.onnx_export import export_onnx, quantize_int8
from distilflow.ops.local_server import free_port, local_server, scoring_server_command
from distilflow.ops.logged_model import log_classifier_model
from distilflow.ops.tracking import Tracking
from tests.conftest import tiny_bert_config

LABELS = ["billing", "bug", "praise"]
ASKED = [{"text": "I was charged twice"}, {"text": "the app crashes", "text_pair": "on start"}]


@pytest.fixture
def classifier(tmp_path, tokenizer):
    folder = tmp_path / "classifier"
    torch.manual_seed(5)
    config = tiny_bert_config(len(tokenizer), layers=1)
    config.num_labels, config.id2label = 3, dict(enumerate(LABELS))
    config.label2id = {label: i for i, label in enumerate(LABELS)}
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    example = dict(tokenizer(["a b c", "d e"], ["f", "g h"], padding=True, return_tensors="pt"))
    int8 = quantize_int8(export_onnx(model, example, tmp_path / "model.onnx"), tmp_path / "model.int8.onnx")
    return folder, int8, model


def _logged(tmp_path, folder, int8):
    config = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", experiment="tasks",
                            artifact_root=tmp_path / "mlruns" / "artifacts", system_metrics=False)
    with Tracking(config) as tracking, tracking.run("task"):
        return config, log_classifier_model(folder, int8, ASKED, {"score": 0.5})


def _load(config: TrackingConfig, model_id: str):
    with Tracking(config):  # its store while entered; MLflow's process-wide settings put back after
        return mlflow.pyfunc.load_model(f"models:/{model_id}")


def test_the_int8_classifier_answers_with_label_names_and_probabilities_close_to_pytorchs(tmp_path, classifier,
                                                                                          tokenizer):
    folder, int8, model = classifier
    config, model_id = _logged(tmp_path, folder, int8)
    served = _load(config, model_id).predict(ASKED)
    with torch.no_grad():
        reference = torch.softmax(model(**tokenizer(["I was charged twice"], return_tensors="pt")).logits, -1)[0]
    first = served[0]
    first = first if isinstance(first, dict) else first.model_dump()
    assert set(first["probabilities"]) == set(LABELS) and first["label"] == LABELS[int(reference.argmax())]
    assert np.allclose([first["probabilities"][name] for name in LABELS], reference.numpy(), atol=0.02)  # int8
    _, plain_id = _logged(tmp_path, folder, None)  # no int8 file: PyTorch
    exact = _load(config, plain_id).predict(ASKED[:1])[0]
    exact = exact if isinstance(exact, dict) else exact.model_dump()
    assert np.allclose([exact["probabilities"][name] for name in LABELS], reference.numpy(), atol=1e-5)


def test_the_classifier_answers_http_requests_through_mlflows_scoring_server(tmp_path, classifier):
    folder, int8, _ = classifier
    config, model_id = _logged(tmp_path, folder, int8)
    port = free_port()
    with local_server(scoring_server_command(f"models:/{model_id}", port), "/ping", port,
                      env={"MLFLOW_TRACKING_URI": config.tracking_uri}) as url:
        request = urllib.request.Request(f"{url}/invocations", data=json.dumps({"inputs": ASKED}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answers = json.loads(response.read())["predictions"]
    assert [answer["label"] in LABELS for answer in answers] == [True, True]
    assert all(abs(sum(answer["probabilities"].values()) - 1) < 1e-4 for answer in answers)
