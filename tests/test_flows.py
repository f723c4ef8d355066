"""The whole pipeline flow at tiny scale under a throwaway Prefect server, in a fresh git + DVC project:
first run registers a champion, an unchanged rerun does nothing new, a changed temperature redoes
exactly distill and GLUE and registers a challenger."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from distilflow.errors import DistilflowError
from tests.conftest import ROOT

BROWSER = bool(shutil.which("chromium")) and importlib.util.find_spec("playwright") is not None


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project(first_contact, monkeypatch):
    """The tiny project after its first `distilflow pipeline` (conftest.first_contact), as this process's cwd."""
    project, done = first_contact
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    monkeypatch.chdir(project)
    return project


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def _commit(project, message: str) -> None:
    """What a user's clone has: the pins and the lock of a run committed."""
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", message],
                   cwd=project, check=True)


def _dvc(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=True).stdout


STAGES = ["prepare", "teacher", "distill", "glue@rte", "glue_report", "export"]  # export reads the
# classifiers the GLUE stages keep
SWEPT_TOO = ["glue.tasks=[rte]", "glue.selection.holdout=0.1"]  # the changed run's, as the sweep's first variant has them


def test_first_contact_the_console_script_on_a_new_machine_ends_with_a_champion(first_contact):
    """A new user's first `distilflow pipeline`: no Prefect home, no caches, no tracking store, Prefect's
    temporary server starting from nothing (23-25 s on 2 cores, past Prefect's own 20 s limit)."""
    project, done = first_contact
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlruns/mlflow.db")
    assert str(client.get_model_version_by_alias("tiny-student", "champion").version) == "1"
    lines = done.stdout.splitlines()
    start = lines.index("| step | stage | wall time |")  # each step's wall time, then the total
    rows = [line.split(" | ") for line in lines[start + 2:start + 2 + len(STAGES) + 4]]
    assert [row[0].removeprefix("| ") for row in rows] == [
        "pin data", *STAGES, "register + promote", "push to DVC remote", "**total** (flow)"]
    assert all(row[1] == "ran" for row in rows[1:1 + len(STAGES)])
    assert "| **total** (flow) |" in (project / "artifacts" / "glue" / "pipeline_report.md").read_text()
    timed = json.loads((project / "artifacts" / "pipeline_run.json").read_text())  # the figures' result file
    assert list(timed["seconds"]) == [row[0].removeprefix("| ") for row in rows[:-1]]
    assert timed["command_seconds"] > timed["flow_seconds"] > 0 and "cores" in timed["machine"]


def test_the_export_scores_each_classifier_as_the_glue_stage_did(first_contact):
    """Issue 24: one classifier, one score. The export stage's PyTorch score of each task's classifier is the GLUE
    stage's (one seed: the median is that classifier's score), and ONNX fp32 gives the same."""
    project, _ = first_contact
    glue = json.loads((project / "metrics" / "glue.json").read_text())
    exported = json.loads((project / "metrics" / "export.json").read_text())
    assert len(glue["settings"]["seeds"]) == 1
    for task, score in glue["models"]["student"]["scores"].items():
        assert exported[f"classifier_{task}_score_pytorch"] == score, task
        assert exported[f"classifier_{task}_score_onnx_fp32"] == score, task


def test_pipeline_flow_rerun_and_changed_param(prefect_server, project):
    from distilflow.ops import registry
    from flows.pipeline import pipeline_flow

    mlflow.set_tracking_uri("sqlite:///mlruns/mlflow.db")  # the project's store, as the flow sets it
    client = mlflow.MlflowClient()
    first_version = str(client.get_model_version_by_alias("tiny-student", "champion").version)
    parent = client.search_runs([client.get_experiment_by_name("distilflow").experiment_id],
                                "tags.stage = 'pipeline'")[0]
    assert parent.info.status == "FINISHED"
    _assert_comparable_in_the_runs_table(client, parent, project)
    assert {"dvc_corpus", "dvc_glue", "dvc_teacher", "dvc_student_artifact", "git_commit",
            "prefect_flow_run_id"} <= set(parent.data.tags)
    assert parent.data.params["distill.loss.temperature"] == "2.0"  # every hyperparameter on the parent run
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {run.data.tags["stage"] for run in children} == {"prepare", "teacher_head", "distill", "export", "glue_task",
                                                               "glue_report"}
    assert len([run for run in children if run.data.tags["stage"] == "glue_task"]) == 2  # student, teacher

    served = mlflow.pyfunc.load_model("models:/tiny-student@champion")
    predictions = served.predict(["I completed writing my [MASK]."])[0]
    assert len(predictions) == 5 and all(p.sequence.startswith("i completed writing my") for p in predictions)
    assert _dvc("status", "--json").strip() in ("{}", "")
    assert "glue" in _dvc("metrics", "show")

    again = pipeline_flow()
    assert again["stages"] == dict.fromkeys(STAGES, "unchanged, skipped")
    assert not again["registered_new"] and again["version"] == first_version
    assert len(client.search_model_versions("name='tiny-student'")) == 1

    with pytest.raises(DistilflowError, match=r"data/corpus.dvc, data/glue.dvc, data/teacher.dvc not committed"):
        pipeline_flow(overrides=["distill.loss.temperature=3"])  # a DVC experiment starts from the last commit
    _commit(project, "the pins and the first run's lock")
    before = Path("params.yaml").read_bytes()
    # as from the Prefect UI's form: a DVC experiment (RTE alone, ranked on a held-out slice: the sweep below's first
    # variant, which DVC's run-cache then restores)
    changed = pipeline_flow(temperature=3.0, overrides=SWEPT_TOO)
    assert Path("params.yaml").read_bytes() == before and _git("status", "--porcelain", "--untracked-files=no") == ""
    assert changed["experiment"] in _git("for-each-ref", "refs/exps")  # its params, dvc.lock and metrics kept there
    assert client.get_run(changed["mlflow_run_id"]).data.params["distill.loss.temperature"] == "3.0"
    assert client.get_run(changed["mlflow_run_id"]).info.run_name == "pipeline T=3 ce=5 mlm=2 cos=1 2L every_other"
    redone = {stage for stage, verdict in changed["stages"].items() if verdict == "ran"}
    assert redone == {"distill", "export", "glue@rte", "glue_report"}  # prepare, teacher: from the cache
    assert changed["registered_new"] and changed["version"] != first_version
    assert str(client.get_model_version_by_alias("tiny-student", "challenger").version) == changed["version"]
    stage_runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{changed['mlflow_run_id']}'")
    assert {run.data.tags["stage"] for run in stage_runs} >= {"distill", "glue_task", "glue_report", "export"}

    registry.promote("tiny-student", changed["version"])
    assert registry.rollback("tiny-student") == (first_version, True)
    assert str(client.get_model_version_by_alias("tiny-student", "champion").version) == first_version



def test_a_sweep_is_dvc_experiments_under_one_mlflow_run_ranked_off_dev_and_resumes_after_a_kill(prefect_server,
                                                                                                 project, tmp_path):
    """Three variants through real DVC experiments (after the test above: the pins committed), the sweep killed during
    the second and run again: the first is not run again, params.yaml and the working tree are untouched, one MLflow
    parent holds the variants' runs, the winner on the held-out selection slices is the challenger, and a variant
    that fails is its one-line reason while the others go on. The first variant's params are those of the changed
    run above: DVC's run-cache restores its stages, the student byte for byte, instead of training it again."""
    import os
    import signal
    import time

    from prefect.settings import PREFECT_API_URL

    from distilflow.ops import experiments

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": "t", "variants": {
        "t3": ["distill.loss.temperature=3.0", "glue.tasks=[rte]"],
        "t4": ["distill.loss.temperature=4.0", "glue.tasks=[rte]", "distill.train.max_steps=40"],  # time to be killed in
        "deep": ["student.n_layers=9", "glue.tasks=[rte]"]}}))  # the tiny teacher has 4 layers
    command = [str(Path(sys.executable).parent / "distilflow"), "sweep", str(sweep_file)]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    before, logs = Path("params.yaml").read_bytes(), project / "artifacts" / "sweeps" / "t" / "logs"
    first, second = logs / "t3.log", logs / "t4.log"
    killed = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    # the second variant's distillation killed once it has a checkpoint: kept in the project, not in the experiment's
    # temporary copy, so that the sweep given again resumes it
    checkpoints, deadline = project / "artifacts" / "checkpoints" / "distill@t-t4", time.monotonic() + 400
    while not list(checkpoints.glob("step_*.pt")):
        assert killed.poll() is None and time.monotonic() < deadline, "the second variant never checkpointed"
        time.sleep(0.2)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    finished_first = first.stat().st_mtime
    verdicts = experiments.stage_verdicts(first.read_text())  # glue_report writes metrics/ (git's): it always runs
    assert verdicts == {"prepare": "unchanged, skipped", "teacher": "unchanged, skipped", "glue_report": "ran",
                        "distill": "restored from DVC's run-cache", "glue@rte": "restored from DVC's run-cache"}
    [pipeline_run] = [name for name in experiments.finished() if name.startswith("run-")]  # the changed run's
    assert experiments.output_md5("t-t3", "artifacts/student") == experiments.output_md5(pipeline_run,
                                                                                          "artifacts/student")

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # a variant failed, the others went on
    assert "sweep t: 2 of 3 variants done; failed: deep (error: student.n_layers=9 exceeds the teacher's 4 layers" \
        in done.stdout
    assert first.stat().st_mtime == finished_first  # the finished variant was not run again
    assert "resumed from step " in second.read_text()  # the killed one went on from its checkpoint
    # the teacher's GLUE baseline is the project's (git-ignored, not in the temporary copy): fine-tuned once at most
    assert "fine-tuning the baseline" not in second.read_text()
    assert Path("params.yaml").read_bytes() == before and _git("status", "--porcelain", "--untracked-files=no") == ""
    assert {"t-t3", "t-t4"} <= set(_dvc("exp", "list", "--name-only").split())
    disk = subprocess.run([sys.executable, str(ROOT / "bench" / "sweep_disk.py"), "t"], capture_output=True, text=True)
    costs = dict(line.split(": ", 1) for line in disk.stdout.splitlines())  # what each adds to DVC's cache alone
    assert costs["t3"].startswith("0.0 MB") and "artifacts/student " in costs["t4"], disk.stdout + disk.stderr

    client = mlflow.MlflowClient("sqlite:///mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("distilflow").experiment_id
    parent = client.search_runs([experiment], "tags.sweep = 't' and tags.stage = 'sweep'")[0]
    children = {run.data.tags["variant"]: run for run in
                client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert sorted(children) == ["deep", "t3", "t4"] and parent.info.status == "FAILED"
    assert children["deep"].info.status == "FAILED" and "exceeds" in children["deep"].data.tags["failure"]
    scored = [children["t3"], children["t4"]]
    assert all("distill.loss.temperature=" in run.data.tags["overrides"] and "student_glue_score" in run.data.metrics
               for run in scored)
    ranked = max(scored, key=lambda run: run.data.metrics["student_selection_glue_score"])  # first of a tie wins
    winner = ranked if len({r.data.metrics["student_selection_glue_score"] for r in scored}) > 1 else scored[0]
    assert f"winner: **{winner.data.tags['variant']}**" in parent.data.tags["mlflow.note.content"]
    challenger = client.get_model_version_by_alias("tiny-student", "challenger")
    assert challenger.tags["student_fingerprint"] == json.loads(
        (project / "artifacts" / "sweeps" / f"t-{winner.data.tags['variant']}" / "student" / "distilflow.json"
         ).read_text())["fingerprint"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"variants.csv", "report.md"}


def test_the_dvc_way_a_queued_experiment_logs_its_stages_into_the_projects_one_store(project):
    """`dvc exp run --queue` + `dvc queue start`, with the README's set-up (the environment activated: DVC's queue
    starts `dvc` by name): the experiment runs in a temporary copy under .dvc/tmp, and its stage's MLflow run lands
    in the project's store, under one run of the experiment, not in a store deleted with the copy."""
    import os
    import time

    bin_folder = Path(sys.executable).parent
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "VIRTUAL_ENV")}
    env |= {"PATH": f"{bin_folder}{os.pathsep}/usr/bin{os.pathsep}/bin", "VIRTUAL_ENV": str(bin_folder.parent)}
    dvc = [str(bin_folder / "dvc")]
    subprocess.run([*dvc, "exp", "run", "--queue", "--name", "queued", "-S", "distill.train.max_steps=3", "distill"],
                   env=env, check=True, capture_output=True)
    try:
        subprocess.run([*dvc, "queue", "start"], env=env, check=True, capture_output=True)
        deadline = time.monotonic() + 300
        while "queued" not in _git("for-each-ref", "refs/exps"):
            status = subprocess.run([*dvc, "queue", "status"], env=env, capture_output=True, text=True).stdout
            assert "Failed" not in status, subprocess.run([*dvc, "queue", "logs", "queued"], env=env,
                                                          capture_output=True, text=True).stdout[-3000:]
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
    finally:
        subprocess.run([*dvc, "queue", "stop"], env=env, capture_output=True)
    client = mlflow.MlflowClient("sqlite:///mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("distilflow").experiment_id
    [run] = client.search_runs([experiment], "tags.dvc_experiment = 'queued'")
    stages = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert [stage.data.tags["stage"] for stage in stages] == ["distill"]  # prepare, teacher: from the run-cache
    assert stages[0].data.params["distill.train.max_steps"] == "3"
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db"))

def test_the_mlflow_ui_shows_the_two_runs_in_a_real_browser(project):
    """After the rerun and the sweep above (same worker, same project): both pipeline runs' GLUE score and retention
    on screen in Chromium, the champion's model card, and the sweep's variants in the compare view. .ci/run installs
    Chromium from Debian's packages."""
    if not BROWSER:
        pytest.skip("Chromium or playwright is not installed (`apt-get install chromium`): the MLflow UI is not checked")
    shown = subprocess.run([sys.executable, str(ROOT / "bench" / "mlflow_ui.py"), "--model", "tiny-student",
                            "--sweep", "t", "--with-runs", "--out", str(project / "screenshots")], capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert (project / "screenshots" / "mlflow_runs_table.png").stat().st_size > 10_000
    # the sweep above: the temperatures of its two finished variants on screen (the failed one has nothing to compare)
    assert "mlflow_sweep_compare.png (2 variants; varied: distill.loss.temperature" in shown.stdout


def _assert_comparable_in_the_runs_table(client, parent, project):
    """What the MLflow runs table shows for a pipeline run without opening its children (issue 11)."""
    assert parent.info.run_name == "pipeline T=2 ce=5 mlm=2 cos=1 2L every_other"
    metrics = parent.data.metrics
    report = json.loads((project / "metrics" / "glue.json").read_text())
    assert metrics["student_glue_score"] == round(report["models"]["student"]["glue_score"], 4)
    assert metrics["glue_retention"] == round(report["glue_retention"], 4)
    assert {"rte_retention", "student_rte_score", "teacher_rte_score", "student_latency_ms_cpu_b1",
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
    form = stored.parameter_openapi_schema["properties"]  # the Prefect UI's form for a run: typed fields
    assert {"temperature", "n_layers", "layers", "hidden_size", "max_steps", "overrides"} <= set(form)
    assert "integer" in json.dumps(form["hidden_size"])
    for deployment in (stored, on_pool):
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    # A worker of the pool runs the flow from this project folder, where params.yaml and dvc.yaml are.
    assert on_pool.work_pool_name == "gpu-box" and on_pool.entrypoint == "flows/pipeline.py:pipeline_flow"
    assert on_pool.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]


def test_a_sweep_on_a_work_pool_submits_each_variant_as_a_run_of_the_deployment_and_reports_a_failed_one(
        prefect_server, project, monkeypatch):
    """`distilflow sweep --pool`: a variant is a flow run of the pipeline's deployment on the pool, with its
    overrides, its MLflow run and no registration. No worker here: this test plays the worker's part in the
    server (the run fails with a reason, as a worker reports it), and a resumed sweep submits it again."""
    import threading

    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.states import Failed

    from distilflow.config.load import load_params
    from distilflow.config.sweep import SweepSpec
    from distilflow.ops.tracking import Tracking
    from distilflow.steps.sweep_plan import plan
    from flows.pipeline import pipeline_deployment
    from tasks.sweep import run_on_pool

    monkeypatch.setattr("tasks.sweep.POLL_SECONDS", 0.5)  # the tiny flow runs end in seconds, not minutes
    params = load_params("params.yaml")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="gpus", type="process"), overwrite=True)
    pipeline_deployment(params.orchestration, work_pool="gpus").apply()
    spec = SweepSpec(name="pooled", pool="gpus", grid={"distill.loss.temperature": [3]})
    [variant] = plan(spec)
    finished = {}
    worker = threading.Thread(target=lambda: finished.update(variant=run_on_pool.fn(spec, variant)))
    worker.start()
    submitted = _wait_for_flow_runs(DeploymentFilter(name=DeploymentFilterName(any_=[params.orchestration.deployment])), 1)
    assert submitted[0].parameters["overrides"] == ["distill.loss.temperature=3", "glue.selection.holdout=0.1"]
    assert submitted[0].parameters["register_model"] is False and submitted[0].name == "pooled-temperature-3"
    with Tracking(params.tracking) as tracking:
        assert submitted[0].parameters["mlflow_run_id"] == tracking.experiment_run("pooled-temperature-3")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(submitted[0].id, Failed(message="CUDA out of memory"), force=True)
    worker.join(timeout=60)
    assert finished["variant"].status == "failed" and "CUDA out of memory" in finished["variant"].reason
    threading.Thread(target=lambda: run_on_pool.fn(spec, variant), daemon=True).start()  # the sweep run again
    resubmitted = _wait_for_flow_runs(DeploymentFilter(name=DeploymentFilterName(any_=[params.orchestration.deployment])), 2)
    assert {run.id for run in resubmitted} > {submitted[0].id}  # a failed run is submitted again
    with get_client(sync_client=True) as client:
        for run in resubmitted:
            client.set_flow_run_state(run.id, Failed(message="test over"), force=True)


def _wait_for_flow_runs(deployments, count: int, seconds: float = 60) -> list:
    import time

    from prefect import get_client

    deadline = time.monotonic() + seconds
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=deployments)
        if len(runs) >= count or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)

@pytest.mark.parametrize("cron", ["every sunday", "0 0 3 * * 0", "0 0 3 * * 0 2027"])
def test_a_cron_schedule_other_than_five_fields_is_one_clear_error(cron):
    """croniter would take 6 and 7 fields (seconds, years) and run at other times than the user meant."""
    from distilflow.config import OrchestrationConfig
    from distilflow.errors import DistilflowError
    from flows.pipeline import checked_cron, pipeline_deployment

    with pytest.raises(DistilflowError, match=re.escape(f"invalid cron schedule '{cron}': give five fields")):
        pipeline_deployment(OrchestrationConfig(), cron=cron)
    assert checked_cron("0 3 * * 0") == "0 3 * * 0" and checked_cron("@daily") == "@daily"
