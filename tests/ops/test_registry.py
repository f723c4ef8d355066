"""Registry: the promotion rule on tags, one version per distinct student, promote and rollback."""

import json

import mlflow
import pytest
import torch
from transformers import BertForMaskedLM

from distilflow.config import PromotionConfig, RegistryConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.report import GlueReport, ModelScores
from distilflow.ops import registry
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


def _report(**settings) -> GlueReport:
    student = ModelScores(source="s", fingerprint="f", scores={"rte": 0.6, "mrpc": 0.62}, metrics={},
                          glue_score=0.61, speed={"parameters": 10, "latency_ms_cpu_b1": 3.25})
    glue = {"seeds": [42], "max_train_examples": 1000, "learning_rates": [1e-4], "epochs": 3.0,
            "max_seq_length": 128, "batch_size": 32, "warmup_fraction": 0.1, "weight_decay": 0.01, **settings}
    return GlueReport(tasks=["rte", "mrpc"], settings=glue, models={"student": student}, glue_retention=0.9)


def test_version_tags_from_report():
    tags = registry.version_tags(_report(), {"corpus": "abc.dir"})
    assert {key: tags[key] for key in ("glue_score", "glue_tasks", "glue_retention", "latency_ms_cpu_b1",
                                       "dvc_corpus", "glue_seeds", "glue_max_train_examples")} == {
        "glue_score": "0.610000", "glue_tasks": "rte,mrpc", "glue_retention": "0.900000",
        "latency_ms_cpu_b1": "3.250", "dvc_corpus": "abc.dir", "glue_seeds": "[42]", "glue_max_train_examples": "1000"}
    assert "parameters" not in tags


@pytest.mark.parametrize("setting,value", [("seeds", [1, 2, 3]), ("max_train_examples", None),
                                           ("learning_rates", [1e-4, 3e-4])])
def test_decide_compares_only_versions_fine_tuned_the_same_way(setting, value):
    champion = registry.version_tags(_report(), {})
    better = {**registry.version_tags(_report(**{setting: value}), {}), "glue_score": "0.99"}
    decision = registry.decide(PromotionConfig(), better, champion)
    assert not decision.promote and f"glue_{setting}" in decision.reason and "not comparable" in decision.reason
    same_settings = {**registry.version_tags(_report(), {}), "glue_score": "0.99"}
    assert registry.decide(PromotionConfig(), same_settings, champion).promote


def test_decide_without_retention_says_so():
    tags = registry.version_tags(_report().model_copy(update={"glue_retention": None}), {})
    assert "glue_retention" not in tags
    refused = registry.decide(PromotionConfig(min_retention=0.5), tags, None)
    assert not refused.promote and "teacher's GLUE score is 0" in refused.reason
    assert registry.decide(PromotionConfig(min_retention=0.0), tags, None).promote


def test_a_broken_registry_is_not_reported_as_an_empty_one(tmp_path, monkeypatch):
    """Only MLflow's "not found" means "no champion yet"; any other failure surfaces as itself."""
    from mlflow.exceptions import MlflowException

    def locked(*args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) database is locked")

    monkeypatch.setattr(mlflow.MlflowClient, "get_model_version_by_alias", locked)
    with pytest.raises(MlflowException, match="database is locked"):
        registry.champion_version("students")


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

    served = mlflow.pyfunc.load_model("models:/students@champion")
    assert len(served.predict(["I completed writing my [MASK]."], params={"top_k": 3})[0]) == 3


def test_export_files_are_attached_to_the_versions_model_once(store, tmp_path, tokenizer, monkeypatch):
    config = RegistryConfig(model_name="edge")
    run = mlflow.MlflowClient().create_run(store).info.run_id
    version, _ = registry.register_student(config, _student(tmp_path / "s", tokenizer, 3), run, CHAMPION)
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "student.int8.onnx").write_bytes(b"onnx bytes")
    copies = []
    real_copy = mlflow.MlflowClient.log_model_artifacts
    monkeypatch.setattr(mlflow.MlflowClient, "log_model_artifacts",
                        lambda self, *args: copies.append(args) or real_copy(self, *args))
    for _ in range(2):  # a rerun of registration
        registry.attach_export("edge", str(version.version), export_dir, {"onnx_int8_top1_agreement": 0.8123456789})
    assert len(copies) == 1
    tags = mlflow.MlflowClient().get_model_version("edge", str(version.version)).tags
    assert tags["onnx_int8_top1_agreement"] == "0.812346" and tags[registry.ATTACHED_TAG] == "true"
    model_id = mlflow.MlflowClient().get_model_version("edge", str(version.version)).source.removeprefix("models:/")
    assert "student.int8.onnx" in {f.path for f in mlflow.MlflowClient().list_logged_model_artifacts(model_id)}
