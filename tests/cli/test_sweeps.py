"""`distilflow sweep`: the plan before any work, and bad input as one line with exit 2."""

import pytest

from tests.cli.test_app import _assert_one_line_error, _params_file, _run
from tests.conftest import ROOT, tiny_params


@pytest.fixture
def params(tmp_path, small_corpus, headless_teacher_dir):
    return _params_file(tmp_path, tiny_params(tmp_path, small_corpus, headless_teacher_dir))


def test_dry_run_prints_every_variant_and_runs_nothing(tmp_path, monkeypatch, capsys, params):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(monkeypatch, capsys, "sweep", "-p", params, "--dry-run", "--name", "t",
                        "--grid", "distill.loss.temperature=2,4", "--grid", "student.layers=every_other,every_other_top")
    assert code == 0
    assert "4 variants" in out and "t-temperature-4_layers-everyothertop" in out
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "mlruns").exists()


def test_the_headline_campaign_is_a_sweep_file_whose_plan_lists_its_jobs(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code, out, _ = _run(monkeypatch, capsys, "sweep", "params/headline-sweep.yaml", "--dry-run")
    assert code == 0
    assert "24 variants" in out and "one winner per glue.tasks" in out
    assert "headline-tasks-cola_t10-s-td10" in out and "random-init" in out and "20 more variants" in out


def test_the_frontier_campaign_is_a_sweep_of_given_recipes_and_student_shapes(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code, out, _ = _run(monkeypatch, capsys, "sweep", "params/frontier-sweep.yaml", "--dry-run")
    assert code == 0
    assert "4 recipes given" in out and "up to its GLUE report and export" in out
    assert "  recipe rte  glue.tasks=[rte] glue.epochs=10 glue.distillation.weight=0 glue.student_epochs=3 " in out
    assert "the recipe itself, and 6x256, 4x256, 4x192 with its recipe: 16 variants" in out
    # each experiment runs params/headline.yaml's values (dvc.yaml reads params.yaml): the chosen teacher head too
    assert "each with params/headline.yaml's values where they differ from params.yaml: head.train.max_steps=2000 " in out


@pytest.mark.parametrize(("args", "fragments"), [
    (["--grid", "temperature"], ["--grid 'temperature'", "section.key=value1,value2"]),
    (["--grid", "distill.loss.temprature=2,4"], ["variant temprature-2", "temprature"]),
    ([], ["no variants", "--grid"]),
    (["--jobs", "0"], ["jobs"]),
    (["no-such-sweep.yaml"], ["'no-such-sweep.yaml' not found"]),
])
def test_bad_sweep_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, params, args, fragments):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(monkeypatch, capsys, "sweep", "-p", params, "--dry-run", *args)
    _assert_one_line_error(code, err, *fragments)
    assert code == 2


def test_a_sweep_file_that_is_not_a_mapping_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "sweep.yaml").write_text("- distill.loss.temperature=2\n")
    code, _, err = _run(monkeypatch, capsys, "sweep", str(tmp_path / "sweep.yaml"), "--dry-run")
    _assert_one_line_error(code, err, "must be a mapping")


def test_a_sweep_on_a_work_pool_with_a_local_store_is_refused_before_any_work(tmp_path, monkeypatch, capsys, params):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = _run(monkeypatch, capsys, "sweep", "-p", params, "--grid", "distill.loss.temperature=2,4",
                        "--pool", "gpus")
    _assert_one_line_error(code, err, "tracking server every worker reaches", "tracking.tracking_uri")
    assert code == 2 and not (tmp_path / "artifacts").exists()
