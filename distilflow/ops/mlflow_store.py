"""The MLflow store: where it is, whether it can be used (one line when it cannot), and the runs in it
that died with their process."""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from distilflow.base import stage_env
from distilflow.config import TrackingConfig
from distilflow.errors import DistilflowError, first_line

logger = logging.getLogger(__name__)
REACHABLE_TIMEOUT_SECONDS = 5
# The experiment opens in MLflow's model-training view (runs, metrics, models), not the GenAI one.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# Which process runs a run: a RUNNING run whose process is gone was killed (close_dead_runs).
HOST_TAG, PID_TAG = "distilflow.host", "distilflow.pid"


def tracking_uri(config: TrackingConfig) -> str:
    """$MLFLOW_TRACKING_URI, else tracking.tracking_uri with a relative SQLite path made the project's
    (stage_env.project_root: a DVC experiment's temporary copy would otherwise get a store of its own)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or config.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{stage_env.in_project(Path(uri.removeprefix('sqlite:///')))}"
    return uri


def configure(config: TrackingConfig, uri: str, for_writing: bool = True) -> str:
    """Point MLflow at the store `uri` and return the experiment id (created with our artifact root).
    Only tracking.Tracking calls it, and puts MLflow's settings back when it is done.

    Any store that cannot be used (a server that does not answer, an unknown scheme, a read-only or
    damaged database, a file where its folder should be) is one line naming the fix. A read-only
    SQLite store is refused up front when it will be written to, not after the work it was to record,
    and one that does not exist is not created by a command that only reads."""
    import mlflow

    _require_reachable(uri)
    try:
        if uri.startswith("sqlite:///"):
            database = Path(uri.removeprefix("sqlite:///"))
            if not for_writing and not database.is_file():
                raise DistilflowError(f"no MLflow store at {database}: run the pipeline first (`distilflow pipeline`), "
                                      "or point tracking.tracking_uri (or $MLFLOW_TRACKING_URI) at your store")
            _create_sqlite_store(database)
            if for_writing:
                _require_writable_sqlite(database, uri)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment_by_name(config.experiment)
        if experiment is None:
            artifact_location = stage_env.in_project(config.artifact_root).resolve().as_uri() if uri.startswith("sqlite:") else None
            experiment_id = mlflow.create_experiment(config.experiment, artifact_location=artifact_location,
                                                     tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
        else:
            experiment_id = experiment.experiment_id
            if for_writing and experiment.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
                mlflow.MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        mlflow.set_experiment(experiment_id=experiment_id)  # nested runs land in the same experiment
        if for_writing:
            _require_writable_artifacts(mlflow.get_experiment(experiment_id).artifact_location)
    except DistilflowError:
        raise
    except Exception as error:  # MlflowException, sqlalchemy's errors, OSError: all "this store is unusable"
        raise DistilflowError(f"MLflow store '{uri}' cannot be used ({type(error).__name__}: {first_line(error)[:200]}): "
                              f"{STORE_FIX}") from None
    return experiment_id


def _create_sqlite_store(path: Path) -> None:
    """A new SQLite store is built under a temporary name and renamed into place: MLflow's schema
    migrations killed half-way would leave a database no later run can open."""
    if path.exists():
        return
    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine_with_retry

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    engine = create_sqlalchemy_engine_with_retry(f"sqlite:///{partial}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    os.replace(partial, path)


def _require_writable_sqlite(path: Path, uri: str) -> None:
    import sqlite3

    connection = sqlite3.connect(path, timeout=30)
    try:
        # A write inside a transaction that is rolled back: the lock alone succeeds on a read-only file.
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TABLE distilflow_write_probe (x)")
        connection.rollback()
    except sqlite3.OperationalError as error:
        if "readonly" not in str(error):
            raise
        raise DistilflowError(f"MLflow store '{uri}' is read-only ({error}): make {path} and its folder writable, "
                              f"or {STORE_FIX}") from None
    finally:
        connection.close()


def _require_writable_artifacts(location: str) -> None:
    """A local artifact root that cannot be written to is refused before any work, not after training
    (MLflow would fail only when the first artifact is logged)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return  # a server or object store: the server's business
    folder = Path(unquote(parsed.path))
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), Path("/"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".distilflow-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DistilflowError(f"MLflow artifact root {folder} cannot be written to ({error.strerror or error}; "
                              f"{existing} exists): make it writable, or set tracking.artifact_root (a new "
                              "tracking.experiment takes it), or set tracking.enabled=false") from None


STORE_FIX = "fix tracking.tracking_uri in params.yaml (or $MLFLOW_TRACKING_URI), or set tracking.enabled=false"
_reachable: set[str] = set()


def _require_reachable(uri: str) -> None:
    """A tracking server is asked once, with a short timeout: MLflow itself retries for minutes."""
    if not uri.startswith(("http://", "https://")) or uri in _reachable:
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACHABLE_TIMEOUT_SECONDS).close()
    except urllib.error.HTTPError:
        pass  # it answered: reachable, whatever it thinks of /health
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DistilflowError(f"MLflow tracking server {uri} does not answer ({reason}): start it, or "
                              f"{STORE_FIX}") from None
    _reachable.add(uri)


def close_dead_runs(experiment_id: str) -> list[str]:
    """Runs this machine started whose process is gone (SIGKILL, power loss) are marked KILLED, so that
    no run stays RUNNING for ever. Returns their ids."""
    import mlflow

    client = mlflow.MlflowClient()
    closed = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if tags.get(HOST_TAG) == socket.gethostname() and not _process_alive(int(tags.get(PID_TAG, "0") or 0)):
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def continuable(run_id: str | None, experiment_id: str) -> str | None:
    """The run to continue, if it exists in this store's experiment; else None, said on stderr: a stored
    run id must never block a resume (the store may have moved or been reset)."""
    if run_id is None:
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except MlflowException:
        run = None
    if run is None or run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
        logger.warning("MLflow run %s is not in this store's experiment: logging to a new run", run_id)
        return None
    return run_id
