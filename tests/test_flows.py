"""The Prefect flow composes the same core steps; run it at tiny scale under a throwaway Prefect server."""

from pathlib import Path

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness
from transformers import AutoModelForMaskedLM

from flows.distill import distill_flow
from tests.conftest import tiny_params


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_distill_flow_runs_the_core_steps(prefect_server, tmp_path, small_corpus, headless_teacher_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(tmp_path, small_corpus, headless_teacher_dir)))
    student = Path(distill_flow(str(params), overrides=["distill.train.max_steps=2"]))
    assert student == tmp_path / "student"
    assert AutoModelForMaskedLM.from_pretrained(student).config.num_hidden_layers == 2
    assert (tmp_path / "teacher_head" / "model.safetensors").is_file()
