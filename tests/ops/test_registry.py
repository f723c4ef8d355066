"""Registry: the promotion rule on tags, one version per distinct student, promote and rollback."""

import json
import multiprocessing
import time

import mlflow
import pytest

from distilflow.config import PromotionConfig, RegistryConfig, TrackingConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_results import GlueReport, ModelScores
from distilflow.ops import promotion_rule, registry
from distilflow.ops.tracking import Tracking
from tests.conftest import save_tiny_student

CHAMPION = {"glue_score": "0.70", "glue_retention": "0.90", "glue_tasks": "rte,mrpc", "latency_ms_cpu_b1": "5.0"}


def test_decide_beats_champion_by_the_margin():
    policy = PromotionConfig(min_glue_gain=0.01)
    assert promotion_rule.decide(policy, {**CHAMPION, "glue_score": "0.72"}, CHAMPION).promote
    assert not promotion_rule.decide(policy, {**CHAMPION, "glue_score": "0.705"}, CHAMPION).promote


def test_decide_checks_retention_latency_and_comparable_tasks():
    assert promotion_rule.decide(PromotionConfig(), CHAMPION, None).promote  # the first one
    assert "retention" in promotion_rule.decide(PromotionConfig(min_retention=0.95), CHAMPION, None).reason
    slow = promotion_rule.decide(PromotionConfig(max_latency_ms=4.0), CHAMPION, None)
    assert not slow.promote and "budget" in slow.reason
    other_tasks = promotion_rule.decide(PromotionConfig(), {**CHAMPION, "glue_score": "0.9", "glue_tasks": "rte"}, CHAMPION)
    assert not other_tasks.promote and "not comparable" in other_tasks.reason


def _report(**settings) -> GlueReport:
    student = ModelScores(source="s", fingerprint="f", scores={"rte": 0.6, "mrpc": 0.62}, metrics={},
                          glue_score=0.61, speed={"parameters": 10, "latency_ms_cpu_b1": 3.25})
    glue = {"seeds": [42], "max_train_examples": 1000, "learning_rates": [1e-4], "epochs": 3.0,
            "max_seq_length": 128, "batch_size": 32, "warmup_fraction": 0.1, "weight_decay": 0.01, **settings}
    return GlueReport(tasks=["rte", "mrpc"], settings=glue, models={"student": student}, glue_retention=0.9)


def test_version_tags_from_report():
    tags = promotion_rule.version_tags(_report(), {"corpus": "abc.dir"})
    assert {key: tags[key] for key in ("glue_score", "glue_tasks", "glue_retention", "latency_ms_cpu_b1",
                                       "dvc_corpus", "glue_seeds", "glue_max_train_examples")} == {
        "glue_score": "0.610000", "glue_tasks": "rte,mrpc", "glue_retention": "0.900000",
        "latency_ms_cpu_b1": "3.250", "dvc_corpus": "abc.dir", "glue_seeds": "[42]", "glue_max_train_examples": "1000"}
    assert "parameters" not in tags


def test_latencies_are_compared_only_between_versions_timed_alike():
    """Issue 24: a latency tag says which model and protocol it measured; the rule does not weigh one version's
    encoder latency against another's fill-mask or older-protocol figure."""
    report = _report()
    report.timing = {"protocol": "interleaved-median-iqr/1", "model": "encoder", "threads": 2, "machine": "x"}
    champion = promotion_rule.version_tags(report, {})
    assert champion["latency_protocol"] == "interleaved-median-iqr/1" and champion["latency_model"] == "encoder"
    better = {**champion, "glue_score": "0.99"}
    assert promotion_rule.decide(PromotionConfig(), better, champion).promote
    for tag, other in (("latency_protocol", "median/0"), ("latency_model", "fill-mask")):
        decision = promotion_rule.decide(PromotionConfig(), better, {**champion, tag: other})
        assert not decision.promote and tag in decision.reason and "not comparable" in decision.reason
    untagged = {key: value for key, value in champion.items() if not key.startswith("latency_")}
    assert not promotion_rule.decide(PromotionConfig(), better, untagged).promote  # measured before protocols were named


@pytest.mark.parametrize("setting,value", [("seeds", [1, 2, 3]), ("max_train_examples", None),
                                           ("learning_rates", [1e-4, 3e-4])])
def test_decide_compares_only_versions_fine_tuned_the_same_way(setting, value):
    champion = promotion_rule.version_tags(_report(), {})
    better = {**promotion_rule.version_tags(_report(**{setting: value}), {}), "glue_score": "0.99"}
    decision = promotion_rule.decide(PromotionConfig(), better, champion)
    assert not decision.promote and f"glue_{setting}" in decision.reason and "not comparable" in decision.reason
    same_settings = {**promotion_rule.version_tags(_report(), {}), "glue_score": "0.99"}
    assert promotion_rule.decide(PromotionConfig(), same_settings, champion).promote


def test_a_student_of_another_shape_is_compared_by_a_person_not_the_rule():
    """A 4x256 student answers another size budget than a 3x384 champion: the rule does not trade one for the other."""
    champion = {**promotion_rule.version_tags(_report(), {}), promotion_rule.SHAPE_TAG: "3x384"}
    narrower = {**champion, "glue_score": "0.99", promotion_rule.SHAPE_TAG: "4x256"}
    decision = promotion_rule.decide(PromotionConfig(), narrower, champion)
    assert not decision.promote and "student_shape 4x256 vs 3x384" in decision.reason and "by hand" in decision.reason
    assert promotion_rule.decide(PromotionConfig(), {**narrower, promotion_rule.SHAPE_TAG: "3x384"}, champion).promote


def test_decide_without_retention_says_so():
    tags = promotion_rule.version_tags(_report().model_copy(update={"glue_retention": None}), {})
    assert "glue_retention" not in tags
    refused = promotion_rule.decide(PromotionConfig(min_retention=0.5), tags, None)
    assert not refused.promote and "teacher's GLUE score is 0" in refused.reason
    assert promotion_rule.decide(PromotionConfig(min_retention=0.0), tags, None).promote


def test_a_broken_registry_is_not_reported_as_an_empty_one(tmp_path, monkeypatch):
    """Only MLflow's "not found" means "no champion yet"; any other failure surfaces as itself."""
    from mlflow.exceptions import MlflowException

    def locked(*args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) database is locked")

    monkeypatch.setattr(mlflow.MlflowClient, "get_model_version_by_alias", locked)
    with pytest.raises(MlflowException, match="database is locked"):
        registry.champion_version("students")


@pytest.fixture
def store(tmp_path):
    """A store entered as a job enters it (the registry's calls go to it while it is)."""
    config = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_root=tmp_path / "artifacts",
                            experiment="registry", system_metrics=False)
    with Tracking(config) as tracking:
        yield tracking


def _run(store: Tracking) -> str:
    return store.client().create_run(store.experiment_id).info.run_id


def test_register_once_promote_and_roll_back(store, tmp_path, tokenizer):
    config = RegistryConfig(model_name="students", promotion=PromotionConfig(min_glue_gain=0.0))
    runs = [_run(store) for _ in range(2)]
    first, created = registry.register_student(store, config, save_tiny_student(tmp_path / "a", tokenizer, 1), runs[0], CHAMPION)
    again, created_again = registry.register_student(store, config, tmp_path / "a", runs[1], CHAMPION)
    assert created and not created_again and again.version == first.version

    assert registry.promote_by_policy(config, str(first.version)).promote
    better = {**CHAMPION, "glue_score": "0.75"}
    second, _ = registry.register_student(store, config, save_tiny_student(tmp_path / "b", tokenizer, 2), runs[1], better)
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("students", "challenger").version == second.version
    assert registry.promote_by_policy(config, str(second.version)).promote
    assert client.get_model_version_by_alias("students", "champion").version == second.version
    rows = registry.list_versions("students")
    assert [(row["version"], row["aliases"], row["score"]) for row in rows] == [("2", "challenger, champion", "75.0"),
                                                                              ("1", "", "70.0")]

    assert registry.rollback("students") == ("1", True)
    assert client.get_model_version_by_alias("students", "champion").version == first.version
    with pytest.raises(DistilflowError, match="no earlier champion"):
        registry.rollback("students")
    with pytest.raises(DistilflowError, match="has no version 9"):
        registry.promote("students", "9")

    served = mlflow.pyfunc.load_model("models:/students@champion")
    assert len(served.predict(["I completed writing my [MASK]."], params={"top_k": 3})[0]) == 3


def test_export_files_are_attached_to_the_versions_model_once(store, tmp_path, tokenizer, monkeypatch):
    config = RegistryConfig(model_name="edge")
    run = _run(store)
    version, _ = registry.register_student(store, config, save_tiny_student(tmp_path / "s", tokenizer, 3), run, CHAMPION)
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


def _race(uri: str, name: str, version: str, start: float) -> None:
    """One of two processes promoting at the same instant."""
    mlflow.set_tracking_uri(uri)
    time.sleep(max(0.0, start - time.time()))
    registry.promote(name, version)


def race_promotions(uri: str, name: str, rounds: int, source: str) -> list[tuple[str, str]]:
    """Two processes promote two versions at the same instant, `rounds` times; (alias, history's last) each time."""
    client = mlflow.MlflowClient(uri)
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source)
    registry.promote(name, "1")
    context = multiprocessing.get_context("fork")  # no new interpreter: the race is the promote calls
    outcomes = []
    for _ in range(rounds):
        start = time.time() + 0.3
        racers = [context.Process(target=_race, args=(uri, name, version, start)) for version in ("2", "3")]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(60)
            assert racer.exitcode == 0
        history = client.get_registered_model(name).tags[registry.HISTORY_TAG].split(",")
        outcomes.append((str(client.get_model_version_by_alias(name, "champion").version), history[-1]))
    return outcomes


def test_two_processes_promoting_at_once_leave_alias_and_history_agreeing(store, tmp_path):
    uri = mlflow.get_tracking_uri()
    outcomes = race_promotions(uri, "raced", rounds=10, source=tmp_path.as_uri())
    assert all(alias == last for alias, last in outcomes), outcomes
    version, moved = registry.rollback("raced")  # the champion's predecessor, and it says it moved
    assert moved and str(mlflow.MlflowClient().get_model_version_by_alias("raced", "champion").version) == version


def test_a_rollback_from_a_history_that_ran_ahead_of_the_alias(store, tmp_path):
    """A registry written before promotions were atomic: the history ends with 3, which lost the alias race
    to 2. The old rollback popped 3 and 'rolled back' to 2, the champion already; the alias is the truth."""
    client = mlflow.MlflowClient()
    client.create_registered_model("old")
    for _ in range(3):
        client.create_model_version("old", tmp_path.as_uri())
    client.set_registered_model_tag("old", registry.HISTORY_TAG, "1,2,3")
    client.set_registered_model_alias("old", "champion", "2")
    assert registry.rollback("old") == ("1", True)
    client.set_registered_model_tag("old", registry.HISTORY_TAG, "2,1,1")  # a repeated entry: nothing to move
    client.set_registered_model_alias("old", "champion", "1")
    assert registry.rollback("old") == ("1", False)


def test_a_student_whose_losses_are_not_numbers_is_never_registered(store, tmp_path, tokenizer):
    folder = save_tiny_student(tmp_path / "diverged", tokenizer, 3)
    (folder / "distilflow.json").write_text(json.dumps({"fingerprint": "student-3",
                                                         "metrics": {"val_mlm_loss": float("nan"), "test_mlm_loss": 7.0}}))
    run = _run(store)
    with pytest.raises(DistilflowError, match=r"diverged \(val_mlm_loss nan\): distil it again .*nothing was registered"):
        registry.register_student(store, RegistryConfig(model_name="students"), folder, run, CHAMPION)
    assert not mlflow.MlflowClient().search_registered_models("name='students'")


def test_a_task_student_is_promoted_by_the_same_rule_on_its_tasks_score():
    champion = {"task": "tickets", "task_score": "0.80", "task_retention": "0.95", "task_data": "abc",
                "latency_protocol": "p", "latency_model": "student_onnx_int8"}
    better = {**champion, "task_score": "0.82"}
    assert promotion_rule.decide(PromotionConfig(), better, champion).reason.startswith("task tickets score 0.8200 >=")
    assert not promotion_rule.decide(PromotionConfig(), {**champion, "task_score": "0.79"}, champion).promote
    low = promotion_rule.decide(PromotionConfig(min_retention=0.97), better, champion)
    assert not low.promote and "task tickets retention 0.950 < 0.97" in low.reason
    other_data = promotion_rule.decide(PromotionConfig(), {**better, "task_data": "def"}, champion)
    assert not other_data.promote and "task_data def vs abc" in other_data.reason
