"""Data parallel = one process with the same global batch: 2 processes (gloo, CPU) vs 1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distilflow.train.distributed import SINGLE_PROCESS, process_group

JOB = Path(__file__).with_name("distributed_job.py")
ROOT = JOB.parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            "--master_port=29517"]


def _run(launcher: list[str], out: Path, micro_batch_size: int, *how: str, expect_failure: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launcher + [str(JOB), str(out), str(micro_batch_size), *how], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if expect_failure:
        assert done.returncode != 0 and not (out / "result.pt").exists()
        return {}
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out / "result.pt")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> dict:
    """An uninterrupted 2-process run, micro-batch 4: what both comparisons below compare with."""
    return _run(TORCHRUN, tmp_path_factory.mktemp("two"), micro_batch_size=4)


def test_two_processes_give_the_weights_and_losses_of_one_with_the_same_global_batch(tmp_path, two_processes):
    two = two_processes
    one = _run([sys.executable], tmp_path / "one", micro_batch_size=8)
    assert (two["world_size"], one["world_size"]) == (2, 1)
    assert len(one["losses"]) == 3
    assert torch.allclose(torch.tensor(two["losses"]), torch.tensor(one["losses"]), rtol=1e-6, atol=0)
    moved = 0
    for name, weight in one["state"].items():
        assert torch.allclose(two["state"][name], weight, rtol=1e-5, atol=1e-6), name
    initial = _run([sys.executable], tmp_path / "half", micro_batch_size=4)  # another batch: other weights
    moved = sum(not torch.allclose(initial["state"][n], w, rtol=1e-5, atol=1e-6) for n, w in one["state"].items())
    assert moved > 10  # the comparison above could tell runs apart


def test_two_processes_killed_and_resumed_end_with_the_weights_of_an_uninterrupted_run(tmp_path, two_processes):
    straight = two_processes
    _run(TORCHRUN, tmp_path / "resumed", 4, "stop-at-2", expect_failure=True)
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("step_*.pt"))
    assert checkpoints[-1] == "step_0000002.pt"  # one file, written by rank 0
    resumed = _run(TORCHRUN, tmp_path / "resumed", 4, "resume")
    for name, weight in straight["state"].items():
        assert torch.equal(resumed["state"][name], weight), name


def test_a_plain_process_is_a_group_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert process_group() is SINGLE_PROCESS and SINGLE_PROCESS.is_main and not SINGLE_PROCESS.is_distributed


def test_distill_command_runs_data_parallel_when_asked(tmp_path, small_corpus, headless_teacher_dir):
    """$DISTILFLOW_TORCHRUN reruns `distilflow distill --with-inputs` under torchrun: 2 processes on CPU (one
    prepares the corpus, both train the head and distil), one student,
    one MLflow run, one metrics file."""
    import yaml

    from tests.conftest import tiny_params

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(tmp_path, small_corpus, headless_teacher_dir)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "DISTILFLOW_TORCHRUN": "--nproc_per_node=2 --master_addr=127.0.0.1 --master_port=29518"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the run goes to the store params.yaml names
    done = subprocess.run([sys.executable, "-m", "distilflow", "distill", "--with-inputs", "--params", str(params)],
                          cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("student saved to") == 1  # printed by rank 0 only
    assert (tmp_path / "student" / "model.safetensors").is_file()
    assert (tmp_path / "metrics" / "distill.json").is_file()
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["test"], filter_string="tags.stage = 'distill'")
    assert len(runs) == 1 and runs["params.resolved.processes"].iloc[0] == "2"
