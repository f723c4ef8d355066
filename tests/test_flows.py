"""The whole pipeline flow at tiny scale under a throwaway Prefect server, in a fresh git + DVC project:
first run registers a champion, an unchanged rerun does nothing new, a changed temperature redoes
exactly distill and GLUE and registers a challenger."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from distilflow.ops.params_file import validate_params
from tests.conftest import ROOT, tiny_glue_release, tiny_params

BROWSER = bool(shutil.which("chromium")) and importlib.util.find_spec("playwright") is not None


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project(tmp_path, small_corpus, headless_teacher_dir, monkeypatch):
    """A new project: dvc.yaml and the code it names, tiny params whose sources are tiny local data."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "dvc.yaml", project)
    shutil.copytree(ROOT / "distilflow", project / "distilflow", ignore=shutil.ignore_patterns("__pycache__"))
    raw = tiny_params(project, small_corpus, "data/teacher")
    raw["data"]["train"]["files"] = ["data/corpus/*.txt"]
    raw["data"]["test"]["files"] = ["data/corpus/heldout/*.raw"]
    raw.pop("paths")
    raw["tracking"] = {"system_metrics": False}
    raw["glue"] = {"source": "data/glue", "tasks": ["rte", "mrpc"], "epochs": 1, "batch_size": 8,
                   "max_seq_length": 32, "progress": False, "latency": {"batch_sizes": [1], "repeats": 1}}
    raw["versioning"] = {"sources": {
        "corpus": {"path": "data/corpus", "url": str(small_corpus)},
        "glue": {"path": "data/glue", "url": str(tiny_glue_release(tmp_path / "glue"))},
        "teacher": {"path": "data/teacher", "url": str(headless_teacher_dir)}}}
    raw["registry"] = {"model_name": "tiny-student", "promotion": {"min_retention": 0.0}}
    # DVC reads params.yaml itself, so every section dvc.yaml names must be written out, defaults included.
    (project / "params.yaml").write_text(yaml.safe_dump(validate_params(raw).model_dump(mode="json")))
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                    [sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")]):
        subprocess.run(command, cwd=project, check=True)
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return project


def _dvc(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=True).stdout


def test_pipeline_flow_first_run_rerun_and_changed_param(prefect_server, project):
    from distilflow.ops import registry
    from flows.pipeline import pipeline_flow

    first = pipeline_flow()
    assert all(first["stages_ran"].values())
    assert list(first["stages_ran"]) == ["prepare", "teacher", "distill", "glue@rte", "glue@mrpc", "export",
                                         "glue_report"]  # export after GLUE: it exports the kept classifiers
    assert first["registered_new"] and first["promoted"]
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("tiny-student", "champion").version) == first["version"]

    parent = client.get_run(first["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    _assert_comparable_in_the_runs_table(client, parent, project)
    assert {"dvc_corpus", "dvc_glue", "dvc_teacher", "dvc_student_artifact", "git_commit",
            "prefect_flow_run_id"} <= set(parent.data.tags)
    assert parent.data.params["distill.loss.temperature"] == "2.0"  # every hyperparameter on the parent run
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{first['mlflow_run_id']}'")
    assert {run.data.tags["stage"] for run in children} == {"prepare", "teacher_head", "distill", "export", "glue_task",
                                                               "glue_report"}
    assert len([run for run in children if run.data.tags["stage"] == "glue_task"]) == 4  # (student, teacher) x 2

    served = mlflow.pyfunc.load_model("models:/tiny-student@champion")
    predictions = served.predict(["I completed writing my [MASK]."])[0]
    assert len(predictions) == 5 and all(p.sequence.startswith("i completed writing my") for p in predictions)
    assert _dvc("status", "--json").strip() in ("{}", "")
    assert "glue" in _dvc("metrics", "show")

    again = pipeline_flow()
    assert not any(again["stages_ran"].values())
    assert not again["registered_new"] and again["version"] == first["version"]
    assert len(client.search_model_versions("name='tiny-student'")) == 1

    changed = pipeline_flow(overrides=["distill.loss.temperature=3"])  # as from the Prefect UI's parameters
    assert yaml.safe_load(Path("params.yaml").read_text())["distill"]["loss"]["temperature"] == 3  # dvc exp run -S
    assert client.get_run(changed["mlflow_run_id"]).data.params["distill.loss.temperature"] == "3.0"
    assert client.get_run(changed["mlflow_run_id"]).info.run_name == "pipeline T=3 α=5/2/1 2L"
    redone = {stage for stage, ran in changed["stages_ran"].items() if ran}
    assert redone == {"distill", "export", "glue@rte", "glue@mrpc", "glue_report"}
    assert changed["registered_new"] and changed["version"] != first["version"]
    assert str(client.get_model_version_by_alias("tiny-student", "challenger").version) == changed["version"]

    registry.promote("tiny-student", changed["version"])
    assert registry.rollback("tiny-student") == first["version"]
    assert str(client.get_model_version_by_alias("tiny-student", "champion").version) == first["version"]

    if BROWSER:  # .ci/run installs Chromium from Debian's packages; elsewhere bench/mlflow_ui.py by hand
        shown = subprocess.run([sys.executable, str(ROOT / "bench" / "mlflow_ui.py"), "--model", "tiny-student",
                                "--out", str(project / "screenshots")], capture_output=True, text=True, timeout=300)
        assert shown.returncode == 0, shown.stderr[-3000:]  # both runs' GLUE score and retention on screen
        assert (project / "screenshots" / "mlflow_runs_table.png").stat().st_size > 10_000


def _assert_comparable_in_the_runs_table(client, parent, project):
    """What the MLflow runs table shows for a pipeline run without opening its children (issue 11)."""
    assert parent.info.run_name == "pipeline T=2 α=5/2/1 2L"
    metrics = parent.data.metrics
    report = json.loads((project / "metrics" / "glue.json").read_text())
    assert metrics["student_glue_score"] == round(report["models"]["student"]["glue_score"], 4)
    assert metrics["glue_retention"] == round(report["glue_retention"], 4)
    assert {"rte_retention", "student_rte_score", "teacher_mrpc_score", "student_latency_ms_cpu_b1",
            "speedup_cpu_b1", "student_parameters", "student_size_mb", "student_test_mlm_loss",
            "student_test_teacher_agreement"} <= set(metrics)
    assert "GLUE dev results" in parent.data.tags["mlflow.note.content"]
    pinned = {name: yaml.safe_load((project / "data" / f"{name}.dvc").read_text())["outs"][0]["md5"]
              for name in ("corpus", "glue", "teacher")}
    datasets = {d.dataset.name: d.dataset.digest for d in parent.inputs.dataset_inputs}
    assert datasets == {name: md5.removesuffix(".dir") for name, md5 in pinned.items()}
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the model-training view

    version = client.get_model_version_by_alias("tiny-student", "champion")
    assert version.description.startswith("# distilflow student — T=2") and "| GLUE score |" in version.description
    assert version.tags["distill_temperature"] == "2" and version.tags["teacher"] == "data/teacher"
    assert version.source.startswith("models:/m-")  # registered from the distill run's LoggedModel
    logged = mlflow.get_logged_model(version.source.removeprefix("models:/"))
    distill_run = client.get_run(logged.source_run_id)
    assert distill_run.data.tags["stage"] == "distill"
    stored = [p for p in (project / "mlruns").rglob("model.safetensors") if "teacher_with_head" not in str(p)]
    assert len(stored) == 1, f"the student's weights are stored {len(stored)} times in MLflow"
    assert {m.key for m in logged.metrics} >= {"test_mlm_loss", "student_glue_score", "glue_retention"}
    onnx_files = {f.path for f in client.list_logged_model_artifacts(logged.model_id)}
    assert {"student.onnx", "student.int8.onnx"} <= onnx_files  # champion names a deployable file
    assert float(version.tags["onnx_fp32_max_abs_logit_diff"]) < 1e-3


def test_the_one_deployment_served_or_on_a_work_pool_keeps_its_cron_and_one_run_at_a_time(prefect_server):
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from distilflow.config import OrchestrationConfig
    from flows.pipeline import pipeline_deployment

    orchestration = OrchestrationConfig(deployment="weekly", schedule="0 3 * * 0")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="gpu-box", type="process"))
    served = pipeline_deployment(orchestration).apply()
    on_gpu_box = orchestration.model_copy(update={"deployment": "weekly-gpu"})
    pooled = pipeline_deployment(on_gpu_box, cron="0 4 * * *", work_pool="gpu-box").apply()
    with get_client(sync_client=True) as client:
        stored, on_pool = client.read_deployment(served), client.read_deployment(pooled)
    assert (stored.name, on_pool.name) == ("weekly", "weekly-gpu")
    assert [schedule.schedule.cron for schedule in stored.schedules] == ["0 3 * * 0"]
    assert [schedule.schedule.cron for schedule in on_pool.schedules] == ["0 4 * * *"]
    for deployment in (stored, on_pool):
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    # A worker of the pool runs the flow from this project folder, where params.yaml and dvc.yaml are.
    assert on_pool.work_pool_name == "gpu-box" and on_pool.entrypoint == "flows/pipeline.py:pipeline_flow"
    assert on_pool.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]


def test_invalid_cron_is_one_clear_error():
    from distilflow.config import OrchestrationConfig
    from distilflow.errors import DistilflowError
    from flows.pipeline import pipeline_deployment

    with pytest.raises(DistilflowError, match="invalid cron schedule 'every sunday'"):
        pipeline_deployment(OrchestrationConfig(), cron="every sunday")
