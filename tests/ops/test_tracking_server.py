"""Team scale: the registry path through a standing MLflow tracking server (SQL backend, proxied
artifacts), which is how a team shares one store: `MLFLOW_TRACKING_URI=http://host:5000`."""

import json
import sys
import urllib.request

import mlflow
import pytest

from distilflow.config import PromotionConfig, RegistryConfig, TrackingConfig
from distilflow.ops import registry
from distilflow.ops.local_server import TRACKING_SERVER_ENV, free_port, local_server
from distilflow.ops.tracking import Tracking
from tests.conftest import save_tiny_student


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
               "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    with local_server(command, "/health", port, env=TRACKING_SERVER_ENV, timeout_s=90) as url:
        yield url, root


def test_distill_register_promote_and_load_the_champion_through_a_server(server, tmp_path, tokenizer, monkeypatch):
    url, root = server
    config = TrackingConfig(tracking_uri=url, experiment="team", artifact_root=tmp_path / "not-used",
                            system_metrics=False)
    registry_config = RegistryConfig(model_name="team-student", promotion=PromotionConfig(min_retention=0.0))
    tags = {"glue_score": "0.6", "glue_retention": "0.9", "latency_ms_cpu_b1": "3.0"}
    versions = []
    for seed in (1, 2):
        folder = tmp_path / f"student-{seed}"
        save_tiny_student(folder, tokenizer, seed)
        with Tracking(config) as distilling, distilling.run("distill") as run:  # as the distill stage logs it
            model_id = distilling.log_student_model(folder, registry_config.input_example, registry_config.top_k,
                                                    {"test_mlm_loss": 5.0 + seed})
        (folder / "distilflow.json").write_text(json.dumps({"fingerprint": f"s{seed}", "mlflow_model_id": model_id}))
        with Tracking(config) as registering:
            version, created = registry.register_student(registering, registry_config, folder, run.info.run_id,
                                                         {**tags, "glue_score": f"0.{5 + seed}"},
                                                         "# card\n\nseed " + str(seed))
            assert created and registry.promote_by_policy(registry_config, str(version.version)).promote
        versions.append(str(version.version))

    with Tracking(config):
        client = mlflow.MlflowClient()
        assert client.get_model_version_by_alias("team-student", "champion").version == versions[1]
        assert client.get_model_version("team-student", versions[1]).description == "# card\n\nseed 2"
        assert registry.rollback("team-student") == (versions[0], True)
        served = mlflow.pyfunc.load_model("models:/team-student@champion")  # artifacts through the server
    assert len(served.predict(["I completed writing my [MASK]."])[0]) == 5
    assert list((root / "artifacts").rglob("model.safetensors")), "artifacts were not proxied to the server's store"
    assert not (tmp_path / "not-used").exists()


def test_the_runs_table_data_through_the_rest_api(server, monkeypatch):
    """What the MLflow UI's runs table asks the server for: pipeline runs with their headline metrics."""
    url, _ = server
    config = TrackingConfig(tracking_uri=url, experiment="team-runs", system_metrics=False)
    with Tracking(config) as tracking:
        experiment_id = tracking.experiment_id
        for temperature, score in ((2, 0.61), (4, 0.64)):
            run_id = tracking.start_parent_run(f"pipeline T={temperature}", {"stage": "pipeline"},
                                               {"distill": {"loss": {"temperature": temperature}}})
            tracking.log_to_run(run_id, {"student_glue_score": score, "glue_retention": score / 0.7})
            tracking.end_parent_run(run_id, succeeded=True)
    body = json.dumps({"experiment_ids": [experiment_id], "filter": "tags.stage = 'pipeline'",
                       "order_by": ["metrics.student_glue_score DESC"]}).encode()
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
    runs = json.loads(urllib.request.urlopen(request, timeout=30).read())["runs"]
    rows = [(run["info"]["run_name"], {m["key"]: m["value"] for m in run["data"]["metrics"]}) for run in runs]
    assert [name for name, _ in rows] == ["pipeline T=4", "pipeline T=2"]  # sortable by GLUE score
    assert rows[0][1]["glue_retention"] == pytest.approx(0.64 / 0.7)
    assert client_kind(url, experiment_id) == "custom_model_development"


def client_kind(url: str, experiment_id: str) -> str:
    answer = urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", timeout=30)
    tags = {tag["key"]: tag["value"] for tag in json.loads(answer.read())["experiment"].get("tags", [])}
    return tags["mlflow.experimentKind"]


def test_promotions_racing_through_a_server_leave_alias_and_history_agreeing(server, tmp_path, monkeypatch):
    """No lock can be taken on a server's store: each promotion writes, reads back and writes again until alias
    and history agree (registry._move_champion)."""
    from tests.ops.test_registry import race_promotions

    url, _ = server
    mlflow.set_tracking_uri(url)
    outcomes = race_promotions(url, "raced-on-a-server", rounds=10, source="s3://nowhere/model")  # never read
    assert all(alias == last for alias, last in outcomes), outcomes
