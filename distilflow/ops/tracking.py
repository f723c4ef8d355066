"""MLflow, wrapped once: tracking URI, experiment with its artifact root, runs, params, git commit.

Default store: `sqlite:///mlruns/mlflow.db` with artifacts under `mlruns/artifacts` (MLflow 3.18
refuses a bare `./mlruns` file store). `MLFLOW_TRACKING_URI` in the environment wins over params.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from distilflow.base import stage_env
from distilflow.base.provenance import flatten, git_commit, git_is_dirty
from distilflow.config import TrackingConfig, VersioningConfig
from distilflow.ops.mlflow_store import (  # noqa: F401  (configure, tracking_uri: used as tracking.*)
    HOST_TAG,
    PID_TAG,
    close_dead_runs,
    configure,
    continuable,
    tracking_uri,
)

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


@dataclass(frozen=True)
class _RunInfo:
    run_id: str | None


@dataclass(frozen=True)
class UntrackedRun:
    """Stands in for an MLflow run where nothing is tracked (tracking.enabled=false, or not rank 0)."""

    info: _RunInfo = _RunInfo(None)


_untracked_depth = 0  # > 0 inside an untracked run: the log_* helpers below do nothing


@contextmanager
def mlflow_run(config: TrackingConfig, run_name: str, run_id: str | None = None,
               tags: dict[str, str] | None = None, nested: bool = False, enabled: bool = True) -> Iterator[Any]:
    """Start (or, with run_id, continue) a run with system metrics and the git commit tagged.

    Under the pipeline, a new top-level run is nested under the pipeline's run (stage_env.PARENT_RUN_ENV).
    enabled=False (other processes of a data-parallel run) or tracking.enabled=false: nothing is logged.
    """
    global _untracked_depth
    if not (config.enabled and enabled):
        _untracked_depth += 1
        try:
            yield UntrackedRun()
        finally:
            _untracked_depth -= 1
        return
    import mlflow

    experiment_id = configure(config)
    close_dead_runs(experiment_id)
    run_id = continuable(run_id, experiment_id)
    parent = stage_env.parent_run_id() if not (run_id or nested or mlflow.active_run()) else None
    all_tags = standard_tags(tags or {})
    with mlflow.start_run(run_id=run_id, experiment_id=experiment_id, run_name=None if run_id else run_name,
                          nested=nested, parent_run_id=parent, log_system_metrics=config.system_metrics,
                          tags=all_tags) as run:
        if run_id:  # a continued run: now this process runs it
            mlflow.set_tags({PID_TAG: all_tags[PID_TAG]})
        yield run


def start_parent_run(config: TrackingConfig, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
    """Create a run that stays open across processes (the pipeline's parent run), with every
    hyperparameter as a flat param; returns its id."""
    import mlflow
    from mlflow.entities import Param

    experiment_id = configure(config)
    close_dead_runs(experiment_id)
    client = mlflow.MlflowClient()
    run_id = client.create_run(experiment_id, run_name=run_name, tags=standard_tags(tags)).info.run_id
    client.log_batch(run_id, params=[Param(key, value) for key, value in _flat_params(params).items()])
    return run_id


def end_parent_run(config: TrackingConfig, run_id: str, succeeded: bool) -> None:
    import mlflow

    configure(config)
    mlflow.MlflowClient().set_terminated(run_id, "FINISHED" if succeeded else "FAILED")


def run_url(config: TrackingConfig, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """Where the MLflow UI (`mlflow ui --backend-store-uri ...`) shows this run, in its model-training
    view (MLflow 3.17's UI opens experiments in its GenAI view unless the link or the user says so)."""
    experiment_id = configure(config, for_writing=False)
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def standard_tags(tags: dict[str, str]) -> dict[str, str]:
    """The given tags plus the git commit (and whether the tree had uncommitted changes)."""
    all_tags = {"git_commit": git_commit() or "unknown", "git_dirty": str(git_is_dirty()),
                HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **tags}
    if all_tags["git_commit"] != "unknown":
        all_tags["mlflow.source.git.commit"] = all_tags["git_commit"]
    return all_tags


def log_params(params: dict[str, Any]) -> None:
    """Log a nested config as flat `section.key` params (every hyperparameter, one column each)."""
    if _untracked_depth:
        return
    import mlflow

    flat = _flat_params(params)
    existing = mlflow.active_run().data.params if mlflow.active_run() else {}
    # A resumed run already has its params; logging a different value for the same key is an error.
    mlflow.log_params({key: value for key, value in flat.items() if key not in existing})


def _flat_params(params: dict[str, Any]) -> dict[str, str]:
    return {key: str(value)[:MAX_PARAM_LENGTH] for key, value in flatten(params).items()}


def log_metrics(metrics: dict[str, float], step: int | None = None, model_id: str | None = None) -> None:
    """Into the active run; with `model_id`, linked to that logged model too (its page shows them)."""
    if _untracked_depth or not metrics:
        return
    import mlflow

    mlflow.log_metrics(metrics, step=step, model_id=model_id)


def log_source_datasets(versioning: VersioningConfig, names: list[str], run_id: str | None = None) -> None:
    """The pinned inputs `names` (corpus, glue, teacher) as MLflow dataset inputs of the active run (or
    of `run_id`): the runs table's Dataset column and the run page show what a student was made from."""
    if _untracked_depth:
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
        mlflow.MlflowClient().log_inputs(run_id or mlflow.active_run().info.run_id, datasets=inputs)


def log_to_run(run_id: str, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
    """Metrics and tags onto a run that is not this process's active one (the pipeline's parent run)."""
    import time

    import mlflow
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
                                    tags=[RunTag(key, value) for key, value in (tags or {}).items()])


def log_student_model(student_dir: Path, input_example: str, top_k: int, metrics: dict[str, float]) -> str | None:
    """The student folder, logged once, as an MLflow LoggedModel of the active run: a pyfunc that answers
    masked sentences with the top-k predictions and scores (distilflow/serving/fill_mask_model.py, from
    code: serving needs no distilflow), the folder itself its `student` artifact. `metrics` are linked to
    it; returns its model id (None when untracked). The registry registers this model: no other copy of
    the weights goes to MLflow."""
    if _untracked_depth:
        return None
    import mlflow
    import torch
    import transformers

    # by path, not imported: the file declares the model (mlflow.models.set_model) when it runs
    served_model = importlib.util.find_spec("distilflow.serving.fill_mask_model").origin
    info = mlflow.pyfunc.log_model(
        name="student", python_model=served_model, artifacts={"student": str(student_dir)},
        input_example=([input_example], {"top_k": top_k}),  # the params schema: top_k, this default
        # Explicit: inferring them imports the model's modules in a subprocess; torchvision is not needed.
        pip_requirements=[f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                          f"transformers=={transformers.__version__}"],
    )
    if metrics:
        mlflow.log_metrics(metrics, model_id=info.model_id)
    return info.model_id


def logged_model_exists(model_id: str | None) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    if _untracked_depth or not model_id:
        return False
    try:
        mlflow.get_logged_model(model_id)
    except MlflowException:
        return False
    return True


def set_tags(tags: dict[str, str]) -> None:
    if _untracked_depth:
        return
    import mlflow

    mlflow.set_tags(tags)


def log_artifacts(path: Path | str, artifact_path: str | None = None) -> None:
    """A file or a folder's contents, into the active run's artifacts."""
    if _untracked_depth:
        return
    import mlflow

    if Path(path).is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
