"""Bad input ends with one line on stderr and a non-zero exit, never a traceback."""

import os
import sys

import pytest
import torch
import yaml

from distilflow.cli import main
from tests.conftest import HUB, tiny_params


def _run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["distilflow", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _params_file(tmp_path, raw):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _assert_one_line_error(code, err, *fragments):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]  # progress bars come before it
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in errors[0]


def test_unknown_param_key(tmp_path, monkeypatch, capsys, small_corpus, headless_teacher_dir):
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, _, err = _run(monkeypatch, capsys, "distill", "--params", params, "--set", "distill.loss.temprature=3")
    _assert_one_line_error(code, err, "unknown key 'distill.loss.temprature'")


def test_missing_teacher(tmp_path, monkeypatch, capsys, small_corpus):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, "no-such-org/no-such-teacher"))
    code, _, err = _run(monkeypatch, capsys, "prepare", "--params", params)
    _assert_one_line_error(code, err, "no-such-org/no-such-teacher")


def test_empty_corpus(tmp_path, monkeypatch, capsys, small_corpus, headless_teacher_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "nothing.txt").write_text("\n\n")
    raw = tiny_params(tmp_path, small_corpus, headless_teacher_dir)
    raw["data"]["train"] = {"files": [str(tmp_path / "empty" / "*.txt")]}
    code, _, err = _run(monkeypatch, capsys, "prepare", "--params", _params_file(tmp_path, raw))
    _assert_one_line_error(code, err, "contains no text")


def test_corrupt_checkpoint(tmp_path, monkeypatch, capsys, small_corpus, teacher_with_head_dir):
    raw = tiny_params(tmp_path, small_corpus, teacher_with_head_dir)
    checkpoints = tmp_path / "checkpoints" / "distill"
    checkpoints.mkdir(parents=True)
    (checkpoints / "step_0000002.pt").write_bytes(b"not a checkpoint")
    code, _, err = _run(monkeypatch, capsys, "distill", "--params", _params_file(tmp_path, raw), "--resume",
                        "--with-inputs")
    _assert_one_line_error(code, err, "step_0000002.pt", "corrupt")


def test_head_training_disabled_for_headless_teacher(tmp_path, monkeypatch, capsys, small_corpus,
                                                     headless_teacher_dir):
    raw = tiny_params(tmp_path, small_corpus, headless_teacher_dir)
    raw["head"]["enabled"] = False
    code, _, err = _run(monkeypatch, capsys, "distill", "--with-inputs", "--params", _params_file(tmp_path, raw))
    _assert_one_line_error(code, err, "no masked-LM head")


def test_config_prints_resolved_overrides(tmp_path, monkeypatch, capsys, small_corpus, headless_teacher_dir):
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, out, _ = _run(monkeypatch, capsys, "config", "--params", params, "--set", "distill.loss.temperature=4")
    assert code == 0 and '"temperature": 4.0' in out


def test_cuda_out_of_memory_exits_3_with_the_marker_line(tmp_path, monkeypatch, capsys, small_corpus,
                                                         headless_teacher_dir):
    from distilflow.base import stage_env
    from distilflow.jobs import distill

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(distill, "run", out_of_memory)
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, _, err = _run(monkeypatch, capsys, "distill", "--params", params)
    assert code == stage_env.EXIT_OUT_OF_MEMORY
    assert err.strip().splitlines()[-1].startswith(stage_env.OUT_OF_MEMORY_MARKER)


def test_usage_error_is_not_a_traceback(monkeypatch, capsys):
    code, _, err = _run(monkeypatch, capsys, "no-such-command")
    assert code == 2 and "No such command" in err and "Traceback" not in err


def test_rollback_without_a_registry_is_one_line(tmp_path, monkeypatch, capsys, small_corpus, headless_teacher_dir):
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, _, err = _run(monkeypatch, capsys, "rollback", "--params", params)
    _assert_one_line_error(code, err, "no registered model", "make run")


def test_stages_run_without_mlflow_prefect_or_dvc_when_tracking_is_off(tmp_path, small_corpus,
                                                                                  headless_teacher_dir):
    """What a bare GPU machine has (bench/gpu/check.sh): the core must not even import them."""
    import subprocess

    from tests.conftest import ROOT

    params = _params_file(tmp_path, {**tiny_params(tmp_path, small_corpus, headless_teacher_dir),
                                     "tracking": {"enabled": False}})
    blocker = tmp_path / "block" / "sitecustomize.py"
    blocker.parent.mkdir()
    # None in sys.modules: `import mlflow` fails and find_spec says "not installed", as on that machine
    blocker.write_text("import sys\nsys.modules.update(mlflow=None, prefect=None, dvc=None)\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}:{ROOT}"}
    # prepare -> teacher -> distill, as dvc.yaml's stages run them (with --with-inputs: one process starts, not three)
    done = subprocess.run([sys.executable, "-m", "distilflow", "distill", "--with-inputs", "--params", params], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "student" / "model.safetensors").is_file()
    assert not (tmp_path / "mlruns").exists()  # nothing tracked


def test_an_unreachable_tracking_server_is_one_line(tmp_path, monkeypatch, capsys, small_corpus, headless_teacher_dir):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, _, err = _run(monkeypatch, capsys, "prepare", "--params", params)
    _assert_one_line_error(code, err, "http://127.0.0.1:9 does not answer", "tracking.enabled=false")
    assert not (tmp_path / "prepared").exists()  # nothing was half-done


def test_too_long_sequences_for_the_teacher_are_refused_before_any_work(tmp_path, monkeypatch, capsys, small_corpus,
                                                                         headless_teacher_dir):
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, _, err = _run(monkeypatch, capsys, "prepare", "--params", params, "--set", "data.max_seq_length=4096")
    _assert_one_line_error(code, err, "data.max_seq_length=4096 exceeds the 128 positions of teacher")


def test_a_student_deeper_than_the_teacher_is_refused_before_any_work(tmp_path, monkeypatch, capsys, small_corpus,
                                                                       headless_teacher_dir):
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, _, err = _run(monkeypatch, capsys, "distill", "--with-inputs", "--params", params,
                        "--set", "student.n_layers=12")
    _assert_one_line_error(code, err, "student.n_layers=12 exceeds the teacher's")
    assert not (tmp_path / "prepared").exists()  # checked from the teacher's config, before prepare and teacher


def test_pipeline_without_the_shared_data_names_what_is_missing_and_where(tmp_path, monkeypatch, capsys, small_corpus,
                                                                         headless_teacher_dir):
    """A clone without ../shared beside it: one line before Prefect or DVC start, naming the folder looked for."""
    raw = tiny_params(tmp_path, small_corpus, headless_teacher_dir)
    raw["versioning"] = {"sources": {"corpus": {"path": "data/corpus", "url": "../shared/data/corpus"}}}
    project = tmp_path / "clone"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(project)
    code, _, err = _run(monkeypatch, capsys, "pipeline")
    _assert_one_line_error(code, err, "data source corpus not found", f"looked for {tmp_path}/shared/data/corpus")
    assert code == 2 and not (project / "data").exists()


def test_a_hub_mirror_that_is_not_there_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DISTILFLOW_HUB_MIRROR", str(tmp_path / "nowhere"))
    code, _, err = _run(monkeypatch, capsys, "glue", "--model", "sentence-transformers/all-MiniLM-L6-v2", "--tasks", "rte",
                        "--set", f"glue.source={HUB}/nyu-mll/glue")
    _assert_one_line_error(code, err, "'sentence-transformers/all-MiniLM-L6-v2' not found",
                           f"$DISTILFLOW_HUB_MIRROR={tmp_path}/nowhere is no folder")


def test_a_prefect_server_that_does_not_answer_is_one_line(tmp_path, monkeypatch, capsys, small_corpus,
                                                          headless_teacher_dir):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tmp_path, small_corpus, headless_teacher_dir)))
    for command in (["pipeline"], ["serve", "--cron", "0 3 * * 0"]):
        with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # as `export PREFECT_API_URL=...`
            code, _, err = _run(monkeypatch, capsys, *command)
        _assert_one_line_error(code, err, "no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:9/api",
                               "prefect server start")


def test_a_full_disk_while_saving_the_student_or_its_export_is_one_line_and_keeps_the_last_one(tmp_path, monkeypatch, capsys,
                                                                                 small_corpus, headless_teacher_dir):
    """safetensors' writer reports a full disk as SafetensorError, not OSError (issue 23: a 47-line traceback)."""
    from safetensors import SafetensorError

    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir, tracking={"enabled": False}))
    assert _run(monkeypatch, capsys, "distill", "--with-inputs", "--params", params)[0] == 0
    student = tmp_path / "student" / "model.safetensors"
    before = student.read_bytes()

    def disk_full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", disk_full)
    code, _, err = _run(monkeypatch, capsys, "distill", "--params", params, "--restart", "--set", "distill.train.seed=7")
    _assert_one_line_error(code, err, "error: no space left on device (SafetensorError", "free some space, then "
                           f"continue with `distilflow distill --params {params} --set distill.train.seed=7 --resume`")
    assert code == 2 and student.read_bytes() == before  # the last good student is kept

    monkeypatch.undo()
    assert _run(monkeypatch, capsys, "export", "--params", params)[0] == 0
    exported = tmp_path / "export" / "student.onnx"
    before = exported.read_bytes()

    def onnx_disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("torch.onnx.export", onnx_disk_full)
    code, _, err = _run(monkeypatch, capsys, "export", "--params", params)
    _assert_one_line_error(code, err, "error: no space left on device (OSError", f"run `distilflow export --params {params}`")
    assert exported.read_bytes() == before  # the last good export is kept


def test_ctrl_c_says_on_its_own_line_what_was_kept_and_how_to_go_on(tmp_path, monkeypatch, capsys, small_corpus,
                                                                    headless_teacher_dir):
    from distilflow.train.trainer import Trainer

    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir, tracking={"enabled": False}))
    steps = []

    def ctrl_c_at_step_3(self, batch):
        steps.append(batch)
        if len(steps) == 3:
            raise KeyboardInterrupt
        return original(self, batch)

    original = Trainer.optimizer_step
    monkeypatch.setattr(Trainer, "optimizer_step", ctrl_c_at_step_3)
    code, _, err = _run(monkeypatch, capsys, "distill", "--with-inputs", "--params", params, "--restart")
    assert code == 130
    assert err.endswith(f"\ninterrupted: the checkpoints written so far are kept; continue with `distilflow distill "
                        f"--with-inputs --params {params} --resume`\n")
    monkeypatch.setattr("distilflow.jobs.prepare.prepare_corpus", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    code, _, err = _run(monkeypatch, capsys, "prepare", "--params", params)
    assert code == 130 and err.endswith(f"\ninterrupted: nothing it was writing replaced what was there; run "
                                        f"`distilflow prepare --params {params}` again\n")


def test_every_command_is_in_the_map_that_loads_it():
    import typer

    from distilflow.cli import COMMANDS, app, load_commands

    load_commands([])
    registered = {command.name or command.callback.__name__ for command in app.registered_commands}
    mapped = [name for names in COMMANDS.values() for name in names]
    assert sorted(mapped) == sorted(registered) and len(set(mapped)) == len(mapped)
    assert sorted(typer.main.get_command(app).list_commands(None)) == sorted(registered)


@pytest.mark.parametrize("command", ["prepare", "distill", "glue-report", "export"])
def test_a_stage_command_imports_no_other_command_nor_the_registry(command):
    """What DVC's code dependencies rely on: a stage's process never loads the pipeline's or the registry's code."""
    import subprocess

    code = (f"import sys; from distilflow.cli import load_commands; load_commands([{command!r}]); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('distilflow'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())
    assert "distilflow.cli.stages" in loaded
    assert not loaded & {"distilflow.cli.lifecycle", "distilflow.cli.tools", "distilflow.evaluation.report",
                         "distilflow.ops.registry"}


def test_sigterm_says_what_was_kept_and_how_to_go_on_as_ctrl_c_does(tmp_path, small_corpus, headless_teacher_dir):
    """A scheduler or a container stopping sends SIGTERM: exit 143, and the same hint as Ctrl-C, not silence."""
    import signal
    import subprocess
    import time

    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir, tracking={"enabled": False},
                                                distill={"train": {"max_steps": 100000, "checkpoint_every": 1000}}))
    process = subprocess.Popen([sys.executable, "-m", "distilflow", "distill", "--with-inputs", "--params", params,
                                "--restart"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob("checkpoints/teacher_head/*")) and not (tmp_path / "teacher").is_dir():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    time.sleep(3)  # into distillation
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    assert err.endswith(f"\ninterrupted: the checkpoints written so far are kept; continue with `distilflow distill "
                        f"--with-inputs --params {params} --resume`\n"), err[-2000:]
    assert "Traceback" not in err


def test_an_error_during_training_starts_on_its_own_line_after_the_progress_bar(tmp_path, monkeypatch, capsys,
                                                                                small_corpus, headless_teacher_dir):
    from distilflow.errors import DistilflowError
    from distilflow.train.trainer import Trainer

    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir, tracking={"enabled": False}))
    original = Trainer.optimizer_step

    def fails_at_step_3(self, batch):
        if self.step == 2:
            raise DistilflowError("something went wrong at step 3: fix it")
        return original(self, batch)

    monkeypatch.setattr(Trainer, "optimizer_step", fails_at_step_3)
    code, _, err = _run(monkeypatch, capsys, "distill", "--with-inputs", "--params", params, "--restart")
    assert code == 2 and "2/8" in err  # the teacher head's bar was live
    assert "\nerror: something went wrong at step 3: fix it\n" in err  # not appended to the bar's line


def test_listing_models_of_a_store_that_is_not_there_creates_nothing(tmp_path, monkeypatch, capsys, small_corpus,
                                                                   headless_teacher_dir):
    params = _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))
    code, _, err = _run(monkeypatch, capsys, "models", "--params", params)
    _assert_one_line_error(code, err, f"no MLflow store at {tmp_path}/mlruns/mlflow.db: run the pipeline first")
    assert code == 2 and not (tmp_path / "mlruns").exists()
