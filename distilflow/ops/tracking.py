"""MLflow as one service: the store (tracking URI, experiment and its artifact root) and the runs a job
logs to, entered once by the job (the fmind template's services are the model):

    with Tracking(params.tracking) as tracking, tracking.run("prepare", tags={"stage": "prepare"}):
        tracking.log_metrics({...})

While it is entered, MLflow's process-wide settings (tracking and registry URI, experiment, and the
MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID that `mlflow.set_tracking_uri` exports) point at its store;
on exit they are what they were, so two stores in one process never see each other's runs. No other
module sets them. Disabled (tracking.enabled=false, or a process other than the main one of a
data-parallel run), every method does nothing and `run` yields a stand-in with no id.

Default: the project's `sqlite:///mlruns/mlflow.db` (from a DVC experiment's copy too); $MLFLOW_TRACKING_URI wins.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from distilflow.base import stage_env
from distilflow.base.provenance import flatten, git_commit, git_is_dirty
from distilflow.config import TrackingConfig, VersioningConfig
from distilflow.ops.mlflow_store import HOST_TAG, PID_TAG, close_dead_runs, configure, continuable, tracking_uri

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
EXPERIMENT_TAG = "dvc_experiment"  # the DVC experiment a pipeline run is
_EXPORTED = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI")


@dataclass(frozen=True)
class _RunInfo:
    run_id: str | None


@dataclass(frozen=True)
class UntrackedRun:  # stands in for an MLflow run where nothing is tracked
    info: _RunInfo = _RunInfo(None)


class Tracking:
    def __init__(self, config: TrackingConfig, enabled: bool = True, for_writing: bool = True):
        self.config, self.enabled, self.for_writing = config, config.enabled and enabled, for_writing
        self.uri = tracking_uri(config)
        self.experiment_id: str | None = None
        self._saved: tuple | None = None

    # -- the store ---------------------------------------------------------------------------
    def __enter__(self) -> Tracking:
        if not self.enabled:
            return self
        import mlflow
        from mlflow.tracking import _model_registry, _tracking_service, fluent

        self._saved = (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri,
                       fluent._active_experiment_id, {name: os.environ.get(name) for name in _EXPORTED})
        try:
            self.experiment_id = configure(self.config, self.uri, for_writing=self.for_writing)
            mlflow.set_registry_uri(self.uri)
            if self.for_writing:
                close_dead_runs(self.experiment_id)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            self._restore()

    def _restore(self) -> None:
        import mlflow
        from mlflow.tracking import _model_registry, fluent

        tracking_uri_, registry_uri, experiment_id, environment = self._saved
        mlflow.set_tracking_uri(tracking_uri_)
        _model_registry.utils._registry_uri = registry_uri
        fluent._active_experiment_id = experiment_id
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = None

    def client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    # -- runs ----------------------------------------------------------------------------------
    @contextmanager
    def run(self, name: str, run_id: str | None = None, tags: dict[str, str] | None = None,
            nested: bool = False) -> Iterator[Any]:
        """Start (or, with run_id, continue) a run with system metrics and the git commit tagged. Under the
        pipeline, a new top-level run is nested under the pipeline's run (stage_env.PARENT_RUN_ENV)."""
        if not self.enabled:
            yield UntrackedRun()
            return
        import mlflow

        run_id = continuable(run_id, self.experiment_id)
        parent = None if (run_id or nested or mlflow.active_run()) else self._stage_parent()
        all_tags = standard_tags(tags or {})
        with mlflow.start_run(run_id=run_id, experiment_id=self.experiment_id, run_name=None if run_id else name,
                              nested=nested, parent_run_id=parent, log_system_metrics=self.config.system_metrics,
                              tags=all_tags) as run:
            if run_id:  # a continued run: now this process runs it
                mlflow.set_tags({PID_TAG: all_tags[PID_TAG]})
            yield run

    def _stage_parent(self) -> str | None:
        """The pipeline's run (PARENT_RUN_ENV), else in a DVC experiment its run (the sweep's, or made here)."""
        experiment = stage_env.dvc_experiment()
        if stage_env.parent_run_id() or experiment is None:
            return stage_env.parent_run_id()
        return self.experiment_run(experiment)

    def experiment_run(self, experiment: str, parent: str | None = None, tags: dict[str, str] | None = None) -> str:
        """The one pipeline run of DVC experiment `experiment` (tag EXPERIMENT_TAG), made when missing."""
        client = self.client()
        found = client.search_runs([self.experiment_id], f"tags.`{EXPERIMENT_TAG}` = '{experiment}'", max_results=1)
        if found:
            return found[0].info.run_id
        all_tags = {"stage": "pipeline", EXPERIMENT_TAG: experiment, **(tags or {})}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        return client.create_run(self.experiment_id, run_name=f"pipeline {experiment}",
                                 tags=standard_tags(all_tags)).info.run_id

    def start_parent_run(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        """A run that stays open across processes (the pipeline's), every hyperparameter a flat param."""
        from mlflow.entities import Param

        client = self.client()
        run_id = client.create_run(self.experiment_id, run_name=run_name, tags=standard_tags(tags)).info.run_id
        client.log_batch(run_id, params=[Param(key, value) for key, value in flat_params(params).items()])
        return run_id

    def end_parent_run(self, run_id: str, succeeded: bool) -> None:
        self.client().set_terminated(run_id, "FINISHED" if succeeded else "FAILED")

    def run_url(self, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
        """Where the MLflow UI shows this run, in its model-training view (MLflow 3.17's UI opens
        experiments in its GenAI view unless the link or the user says so)."""
        return f"{ui}/#/experiments/{self.experiment_id}/runs/{run_id}?workflowType=machine_learning"

    # -- what a run records -----------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        """A nested config as flat `section.key` params (every hyperparameter, one column each)."""
        if not self.enabled:
            return
        import mlflow

        existing = mlflow.active_run().data.params if mlflow.active_run() else {}
        # A resumed run already has its params; logging a different value for the same key is an error.
        mlflow.log_params({key: value for key, value in flat_params(params).items() if key not in existing})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, model_id: str | None = None) -> None:
        """Into the active run; with `model_id`, linked to that logged model too (its page shows them)."""
        if self.enabled and metrics:
            import mlflow

            mlflow.log_metrics(metrics, step=step, model_id=model_id)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.enabled:
            import mlflow

            mlflow.set_tags(tags)

    def log_artifacts(self, path: Path | str, artifact_path: str | None = None) -> None:
        """A file or a folder's contents, into the active run's artifacts."""
        if not self.enabled:
            return
        import mlflow

        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_to_run(self, run_id: str, metrics: dict[str, float], tags: dict[str, str] | None = None,
                   params: dict[str, str] | None = None) -> None:
        """Metrics, tags and params onto a run that is not this process's active one (the pipeline's parent
        run, a sweep's variant); a param logged again must have the same value."""
        if not self.enabled:
            return
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.client().log_batch(run_id, metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
                                tags=[RunTag(key, value) for key, value in (tags or {}).items()],
                                params=[Param(key, value) for key, value in (params or {}).items()])

    def log_source_datasets(self, versioning: VersioningConfig, names: list[str], run_id: str | None = None) -> None:
        """The pinned inputs `names` (corpus, glue, teacher) as MLflow dataset inputs of the active run (or
        of `run_id`): the runs table's Dataset column and the run page show what a student was made from."""
        if not self.enabled:
            return
        import mlflow
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        from distilflow.ops import dvc
        from distilflow.ops.run_summary import DATASET_CONTEXT, source_datasets

        datasets = source_datasets(versioning, dvc.source_hashes(versioning))
        inputs = [DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT[name])])
                  for name, dataset in datasets.items() if name in names]
        if inputs:
            self.client().log_inputs(run_id or mlflow.active_run().info.run_id, datasets=inputs)

    def log_student_model(self, student_dir: Path, input_example: str, top_k: int,
                          metrics: dict[str, float]) -> str | None:
        """The student folder as an MLflow LoggedModel of the active run (logged_model.py); its id, None untracked."""
        if not self.enabled:
            return None
        from distilflow.ops.logged_model import log_student_model

        return log_student_model(student_dir, input_example, top_k, metrics)

    def logged_model_exists(self, model_id: str | None) -> bool:
        if not self.enabled or not model_id:
            return False
        from mlflow.exceptions import MlflowException

        try:
            self.client().get_logged_model(model_id)
        except MlflowException:
            return False
        return True


def standard_tags(tags: dict[str, str]) -> dict[str, str]:
    """The given tags plus the git commit (and whether the tree had uncommitted changes)."""
    all_tags = {"git_commit": git_commit() or "unknown", "git_dirty": str(git_is_dirty()),
                HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **tags}
    if all_tags["git_commit"] != "unknown":
        all_tags["mlflow.source.git.commit"] = all_tags["git_commit"]
    return all_tags


def flat_params(params: dict[str, Any]) -> dict[str, str]:
    return {key: str(value)[:MAX_PARAM_LENGTH] for key, value in flatten(params).items()}
