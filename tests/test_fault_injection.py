"""Killed at random moments, every stage rerun ends where an uninterrupted run ends: bit-identical
teacher and student, the same registry versions and aliases, no MLflow run left RUNNING, no partial
file left behind (tests/fault_harness.py does the killing)."""

import json
import os
import subprocess
import sys

import mlflow
import yaml
from safetensors.torch import load_file

from tests.conftest import ROOT, tiny_glue_release, tiny_params

KILLS_PER_STAGE = 2  # x 6 stages; at least 8 must land before their stage ends


def _project(folder, corpus, teacher, glue):
    folder.mkdir()
    raw = tiny_params(folder, corpus, teacher)
    raw["tracking"] = {"tracking_uri": "sqlite:///mlruns/mlflow.db", "artifact_root": "mlruns/artifacts",
                       "system_metrics": False}
    raw["glue"] = {"source": str(glue), "tasks": ["rte"], "epochs": 1, "batch_size": 8, "max_seq_length": 32,
                   "progress": False, "latency": {"batch_sizes": [1], "repeats": 1}}
    raw["registry"] = {"model_name": "tiny-student"}
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))


def _tensors(folder):
    return load_file(folder / "model.safetensors")


def _registry(project):
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlruns/mlflow.db")
    client = mlflow.MlflowClient()
    versions = sorted(v.version for v in client.search_model_versions("name='tiny-student'"))
    aliases = dict(client.get_registered_model("tiny-student").aliases)
    statuses = [run.info.status for run in client.search_runs([e.experiment_id for e in client.search_experiments()])]
    return versions, aliases, statuses


def test_every_stage_killed_at_random_then_rerun_ends_as_an_uninterrupted_run(tmp_path, small_corpus,
                                                                              headless_teacher_dir, monkeypatch):
    glue = tiny_glue_release(tmp_path / "glue")
    for name in ("reference", "faulted"):
        _project(tmp_path / name, small_corpus, headless_teacher_dir, glue)
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "fault_harness.py"), str(tmp_path), "7",
                           str(KILLS_PER_STAGE)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    (tmp_path / "summary.json").write_text(json.dumps(summary, indent=1))  # for a look after a failure
    log = (tmp_path / "faulted" / "stages.log").read_text(errors="replace")[-3000:]
    assert set(summary["reference"].values()) == {0}, summary
    assert set(summary["reruns"].values()) == {0}, (summary, log)
    kills = [kill for kill in summary["kills"] if kill["killed"]]
    assert len(kills) >= 8, summary["kills"]
    assert {kill["stage"] for kill in kills} >= {"prepare", "teacher", "distill", "glue-task", "register"}

    reference, faulted = tmp_path / "reference", tmp_path / "faulted"
    for model in ("teacher", "student"):
        expected, actual = _tensors(reference / model), _tensors(faulted / model)
        assert expected.keys() == actual.keys()
        assert all(expected[key].equal(actual[key]) for key in expected), f"{model} differs after the kills"
    expected_versions, expected_aliases, _ = _registry(reference)
    versions, aliases, statuses = _registry(faulted)
    assert (versions, aliases) == (expected_versions, expected_aliases)
    assert "RUNNING" not in statuses
    leftovers = [path for pattern in ("**/*.partial", "**/*.tmp", "**/*.old", "**/step_*.pt", "**/*.lock")
                 for path in faulted.glob(pattern) if "mlruns" not in path.parts]
    assert leftovers == []
