"""A tracking store that cannot be used is one line, fast; runs whose process died are closed; a stored
run id never blocks a resume."""

import os
import subprocess
import sys
import time

import pytest

from distilflow.config import TrackingConfig
from distilflow.errors import DistilflowError
from distilflow.ops import tracking
from distilflow.ops.tracking import Tracking


@pytest.fixture
def store(tmp_path, monkeypatch) -> TrackingConfig:
    return TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db", artifact_root=tmp_path / "artifacts",
                          experiment="test", system_metrics=False)


def test_a_server_that_does_not_answer_is_one_line_within_seconds(store):
    started = time.perf_counter()
    with pytest.raises(DistilflowError, match=r"MLflow tracking server http://127.0.0.1:9 does not answer .*: start"):
        Tracking(store.model_copy(update={"tracking_uri": "http://127.0.0.1:9"})).__enter__()
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("make_store", ["garbage_db", "file_for_folder", "unknown_scheme"])
def test_an_unusable_store_is_one_line_naming_the_fix(store, tmp_path, make_store):
    if make_store == "garbage_db":
        (tmp_path / "mlruns").mkdir()
        (tmp_path / "mlruns" / "mlflow.db").write_bytes(b"this is not a database" * 100)
        config = store
    elif make_store == "file_for_folder":
        (tmp_path / "mlruns").write_text("a file where the store's folder should be")
        config = store
    else:
        config = store.model_copy(update={"tracking_uri": "nosuchscheme://somewhere"})
    with pytest.raises(DistilflowError, match=r"MLflow store '.*' cannot be used \(.*\): fix tracking.tracking_uri"):
        Tracking(config).__enter__()


@pytest.fixture
def read_only(tmp_path):
    """Make a file read-only even for root (who ignores permission bits): chattr +i where it is root."""
    made = []

    def make(path):
        path.chmod(0o444)
        if os.geteuid() == 0:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
                pytest.skip("running as root on a file system without chattr +i: cannot make a file read-only")
            made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_store_is_refused_before_writing_and_still_read(store, read_only):
    with Tracking(store):
        pass
    read_only(store.artifact_root.parent / "mlruns" / "mlflow.db")
    with pytest.raises(DistilflowError, match=r"MLflow store '.*' is read-only \(.*\): make .*mlflow.db and its folder "
                                              r"writable, or fix tracking.tracking_uri"):
        Tracking(store).__enter__()
    with Tracking(store, for_writing=False) as reading:  # listing versions of an archived store still works
        assert reading.experiment_id


def test_a_command_that_only_reads_never_creates_a_store(store):
    """`distilflow models` pointed at a store that is not there: one line, and no empty mlflow.db left behind."""
    database = store.artifact_root.parent / "mlruns" / "mlflow.db"
    with pytest.raises(DistilflowError, match=rf"no MLflow store at {database}: run the pipeline first"):
        Tracking(store, for_writing=False).__enter__()
    assert not database.exists() and not database.parent.exists()


def test_runs_whose_process_died_are_closed_at_the_next_start(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with Tracking(store) as first:
        client = first.client()
        tags = tracking.standard_tags({})
        killed = client.create_run(first.experiment_id, tags={**tags, tracking.PID_TAG: dead.stdout.strip()}).info.run_id
        alive = client.create_run(first.experiment_id, tags=tags).info.run_id  # this process: still running
    with Tracking(store) as second, second.run("next stage"):
        pass
    assert client.get_run(killed).info.status == "KILLED"
    assert client.get_run(alive).info.status == "RUNNING"


def test_a_stored_run_id_from_another_store_starts_a_new_run(store, caplog):
    with Tracking(store) as tracking_, tracking_.run("resumed", run_id="0123456789abcdef0123456789abcdef") as run:
        assert run.info.run_id != "0123456789abcdef0123456789abcdef"
    assert "is not in this store's experiment: logging to a new run" in caplog.text


def test_an_empty_experiment_name_is_refused_by_the_config():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TrackingConfig(experiment="")


def test_a_read_only_artifact_root_is_refused_before_any_work(store, tmp_path):
    """Issue 23: an 82-line OSError [Errno 30], and only after training."""
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1M", "tmpfs", str(read_only)],
                      capture_output=True).returncode != 0:
        pytest.skip("a read-only file system needs `mount` (root)")
    try:
        config = store.model_copy(update={"artifact_root": read_only / "artifacts"})
        with pytest.raises(DistilflowError, match=rf"MLflow artifact root {read_only}/artifacts cannot be written to "
                                                  r"\(Read-only file system; .*\): make it writable"):
            Tracking(config).__enter__()
    finally:
        subprocess.run(["umount", str(read_only)], capture_output=True)
