"""Tracking is one service per job: two stores in one process never see each other's runs or settings."""

import os

import mlflow

from distilflow.config import TrackingConfig
from distilflow.ops.tracking import Tracking, UntrackedRun


def _store(folder) -> TrackingConfig:
    return TrackingConfig(tracking_uri=f"sqlite:///{folder}/mlflow.db", artifact_root=folder / "artifacts",
                          experiment="test", system_metrics=False)


def _runs(config: TrackingConfig) -> dict[str, dict[str, float]]:
    with Tracking(config, for_writing=False) as tracking:
        client = tracking.client()
        return {run.info.run_name: run.data.metrics for run in client.search_runs([tracking.experiment_id])}


def test_two_stores_in_one_process_share_nothing(tmp_path):
    before = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_EXPERIMENT_ID")
    a, b = _store(tmp_path / "a"), _store(tmp_path / "b")
    with Tracking(a) as first, first.run("in a"):
        first.log_metrics({"score": 1.0})
        assert mlflow.get_tracking_uri() == a.tracking_uri
    # MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI, which a later store would read as the user's choice
    assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"),
            os.environ.get("MLFLOW_EXPERIMENT_ID")) == before
    with Tracking(b) as second, second.run("in b"):
        second.log_metrics({"score": 2.0})
        assert mlflow.get_tracking_uri() == b.tracking_uri
    with Tracking(a) as again, again.run("in a, again"):
        again.log_metrics({"score": 3.0})
    assert _runs(a) == {"in a": {"score": 1.0}, "in a, again": {"score": 3.0}}
    assert _runs(b) == {"in b": {"score": 2.0}}
    assert mlflow.get_tracking_uri() == before[0]


def test_the_users_tracking_uri_wins_over_params(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/theirs.db")
    with Tracking(_store(tmp_path / "ours")) as tracking, tracking.run("run"):
        pass
    assert (tmp_path / "theirs.db").is_file() and not (tmp_path / "ours" / "mlflow.db").exists()
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path}/theirs.db"


def test_a_disabled_service_logs_nothing_and_touches_no_store(tmp_path):
    config = _store(tmp_path / "off").model_copy(update={"enabled": False})
    with Tracking(config) as tracking, tracking.run("nothing") as run:
        assert isinstance(run, UntrackedRun) and run.info.run_id is None
        tracking.log_metrics({"score": 1.0})
        tracking.log_params({"a": {"b": 1}})
        assert tracking.log_student_model(tmp_path, "x", 5, {}) is None
    assert not (tmp_path / "off").exists()
