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


def test_a_stage_in_a_dvc_experiments_temporary_copy_logs_into_the_projects_store_under_the_experiments_run(
        tmp_path, monkeypatch):
    """`dvc exp run --temp` and `dvc queue` run a stage in a copy under .dvc/tmp, deleted after: DVC says the
    project (DVC_ROOT) and the experiment (DVC_EXP_NAME), and the relative store is the project's."""
    project, copy = tmp_path / "project", tmp_path / "project" / ".dvc" / "tmp" / "exps" / "copy"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(project))
    monkeypatch.setenv("DVC_EXP_NAME", "sweep-t3")
    relative = TrackingConfig(tracking_uri="sqlite:///mlruns/mlflow.db", artifact_root="mlruns/artifacts",
                              experiment="test", system_metrics=False)
    with Tracking(relative) as tracking, tracking.run("distill") as run:
        assert tracking.uri == f"sqlite:///{project}/mlruns/mlflow.db"
        parent = run.data.tags["mlflow.parentRunId"]
    assert (project / "mlruns" / "mlflow.db").is_file() and not (copy / "mlruns").exists()
    with Tracking(relative, for_writing=False) as tracking:
        experiment_run = tracking.client().get_run(parent)
        assert experiment_run.data.tags["dvc_experiment"] == "sweep-t3"
        assert tracking.experiment_run("sweep-t3") == parent  # the next stage of the experiment: the same run
