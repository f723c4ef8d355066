"""jobs/sweep.py's variant: one DVC experiment up to the stage the sweep asks for (`through`)."""

import subprocess
import sys

import yaml

from distilflow.config import TaskConfig
from distilflow.config.sweep import SweepSpec
from distilflow.jobs import sweep
from distilflow.ops import experiments
from distilflow.steps.sweep_plan import Variant
from tests.conftest import tiny_params

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
# The sweep's two possible last stages, as one-line commands: what matters is which of them a variant runs.
STAGES = {"stages": {"glue_report": {"cmd": "echo report > report.txt", "params": ["distill.train.max_steps"],
                                     "outs": ["report.txt"]},
                     "export": {"cmd": "echo export > export.txt", "deps": ["report.txt"], "outs": ["export.txt"]}}}


def test_a_variant_runs_up_to_its_report_or_through_its_export_when_the_sweep_asks(tmp_path, monkeypatch,
                                                                                   small_corpus, headless_teacher_dir):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tmp_path, small_corpus, headless_teacher_dir)))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(STAGES))
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                    [*GIT, "commit", "-q", "-m", "a project"]):
        subprocess.run(command, check=True, capture_output=True)
    for through, name in (("glue_report", "plain"), ("export", "exported")):
        spec = SweepSpec(name="t", params="params.yaml", through=through)
        variant = Variant(name, [f"distill.train.max_steps={len(name)}"], "all", experiment=f"t-{name}")
        assert sweep.run_variant(spec, variant).status == "planned"  # not failed
    assert experiments.output_md5("t-plain", "report.txt") and not experiments.output_md5("t-plain", "export.txt")
    assert experiments.output_md5("t-exported", "export.txt")


def test_a_sweep_needs_each_tasks_pins_committed_too(params):
    task = {"data": {"files": {"train": "mine/train.csv", "report": "mine/test.parquet"}}, "text": ["review"],
            "teacher_classifier": "mine/teacher"}
    pins = sweep.pinned_files(params.model_copy(update={"tasks": {"reviews": TaskConfig.model_validate(task)}}))
    assert {str(path) for path in pins} >= {"data/tasks/reviews/train.csv.dvc", "data/tasks/reviews/report.parquet.dvc",
                                            "data/tasks/reviews/teacher.dvc"}
    assert len(pins) == len(params.versioning.sources) + 3
