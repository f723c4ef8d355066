"""Registry: the promotion rule on tags, one version per distinct student, promote and rollback."""

import json

import mlflow
import pytest
import torch
from transformers import BertForMaskedLM

from distilflow import registry
from distilflow.config import PromotionConfig, RegistryConfig
from distilflow.errors import DistilflowError
from tests.conftest import tiny_bert_config

CHAMPION = {"glue_score": "0.70", "glue_retention": "0.90", "glue_tasks": "rte,mrpc", "latency_ms_cpu_b1": "5.0"}


def test_decide_beats_champion_by_the_margin():
    policy = PromotionConfig(min_glue_gain=0.01)
    assert registry.decide(policy, {**CHAMPION, "glue_score": "0.72"}, CHAMPION).promote
    assert not registry.decide(policy, {**CHAMPION, "glue_score": "0.705"}, CHAMPION).promote


def test_decide_checks_retention_latency_and_comparable_tasks():
    assert registry.decide(PromotionConfig(), CHAMPION, None).promote  # the first one
    assert "retention" in registry.decide(PromotionConfig(min_retention=0.95), CHAMPION, None).reason
    slow = registry.decide(PromotionConfig(max_latency_ms=4.0), CHAMPION, None)
    assert not slow.promote and "budget" in slow.reason
    other_tasks = registry.decide(PromotionConfig(), {**CHAMPION, "glue_score": "0.9", "glue_tasks": "rte"}, CHAMPION)
    assert not other_tasks.promote and "not comparable" in other_tasks.reason


def test_version_tags_from_report():
    report = {"tasks": ["rte", "mrpc"], "glue_retention": 0.9,
              "models": {"student": {"glue_score": 0.61, "speed": {"parameters": 10, "latency_ms_cpu_b1": 3.25}}}}
    tags = registry.version_tags(report, {"corpus": "abc.dir"})
    assert tags == {"glue_score": "0.610000", "glue_tasks": "rte,mrpc", "glue_retention": "0.900000",
                    "latency_ms_cpu_b1": "3.250", "dvc_corpus": "abc.dir"}


def _student(folder, tokenizer, seed: int):
    torch.manual_seed(seed)
    BertForMaskedLM(tiny_bert_config(len(tokenizer), layers=1)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "distilflow.json").write_text(json.dumps({"fingerprint": f"student-{seed}"}))
    return folder


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("registry", artifact_location=(tmp_path / "artifacts").as_uri())
    return experiment


def test_register_once_promote_and_roll_back(store, tmp_path, tokenizer):
    config = RegistryConfig(model_name="students", promotion=PromotionConfig(min_glue_gain=0.0))
    runs = [mlflow.MlflowClient().create_run(store).info.run_id for _ in range(2)]
    first, created = registry.register_student(config, _student(tmp_path / "a", tokenizer, 1), runs[0], CHAMPION)
    again, created_again = registry.register_student(config, tmp_path / "a", runs[1], CHAMPION)
    assert created and not created_again and again.version == first.version

    assert registry.promote_by_policy(config, str(first.version)).promote
    better = {**CHAMPION, "glue_score": "0.75"}
    second, _ = registry.register_student(config, _student(tmp_path / "b", tokenizer, 2), runs[1], better)
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("students", "challenger").version == second.version
    assert registry.promote_by_policy(config, str(second.version)).promote
    assert client.get_model_version_by_alias("students", "champion").version == second.version
    rows = registry.list_versions("students")
    assert [(row["version"], row["aliases"], row["GLUE"]) for row in rows] == [("2", "challenger, champion", "75.0"),
                                                                              ("1", "", "70.0")]

    assert registry.rollback("students") == "1"
    assert client.get_model_version_by_alias("students", "champion").version == first.version
    with pytest.raises(DistilflowError, match="no earlier champion"):
        registry.rollback("students")
    with pytest.raises(DistilflowError, match="has no version 9"):
        registry.promote("students", "9")

    fill_mask = mlflow.transformers.load_model("models:/students@champion")
    assert len(fill_mask("I completed writing my [MASK].")) == 5
