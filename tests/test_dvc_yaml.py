"""dvc.yaml pins exactly what each stage runs: its code dependencies are the modules its command
executes (derived here from the imports), its paths come from params.yaml, and editing a module makes
`dvc status` list exactly the stages that execute it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distilflow.ops.hashing import PACKAGE_ROOT, source_files, stage_modules
from distilflow.ops.params_file import load_params
from distilflow.ops.tracking import flatten
from tests.conftest import ROOT

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
TASKS = load_params(ROOT / "params.yaml").glue.tasks


def _stages() -> dict[str, dict]:
    """name -> definition, with foreach stages given once under their name (their `do` body)."""
    return {name: stage.get("do", stage) for name, stage in DVC_YAML["stages"].items()}


def _job(stage: dict) -> str:
    """`distilflow glue-task ${item}` -> glue_task: the job module the stage's command runs."""
    program, command, *_ = stage["cmd"].split()
    assert program == "distilflow", stage["cmd"]
    return command.replace("-", "_")


def _expected_code(job: str) -> list[str]:
    return [str(path.relative_to(PACKAGE_ROOT.parent)) for path in source_files(stage_modules(job))]


@pytest.mark.parametrize("name", list(_stages()))
def test_code_dependencies_are_exactly_the_modules_the_stage_executes(name):
    stage = _stages()[name]
    job = _job(stage)
    assert (PACKAGE_ROOT / "jobs" / f"{job}.py").is_file(), f"stage {name} names no job module"
    listed = [dep for dep in stage["deps"] if dep.startswith("distilflow/")]
    expected = _expected_code(job)
    assert listed == expected, f"dvc.yaml stage {name}: deps should list\n" + "\n".join(f"  - {p}" for p in expected)


def test_executed_modules_follow_imports_not_the_whole_package():
    prepare = set(_expected_code("prepare"))
    assert {"distilflow/jobs/prepare.py", "distilflow/data/prepare.py", "distilflow/data/corpus.py"} <= prepare
    assert "distilflow/train/trainer.py" not in prepare and "distilflow/jobs/distill.py" not in prepare
    glue_task = set(_expected_code("glue_task"))
    assert "distilflow/evaluation/finetune.py" in glue_task and "distilflow/train/trainer.py" not in glue_task
    assert "distilflow/evaluation/finetune.py" not in _expected_code("glue_report")


def test_no_path_in_dvc_yaml_that_params_yaml_also_holds():
    values = {str(value) for value in flatten(yaml.safe_load((ROOT / "params.yaml").read_text())).values()
              if isinstance(value, str) and "/" in value}
    values |= {str(value) for value in load_params(ROOT / "params.yaml").paths.model_dump().values()}
    entries = []
    for stage in _stages().values():
        for key in ("deps", "outs", "metrics", "plots"):
            entries += [next(iter(entry)) if isinstance(entry, dict) else entry for entry in stage.get(key, [])]
    literal = [entry for entry in entries if any(entry == value or entry.startswith(value + "/") for value in values)]
    assert literal == [], f"write these as ${{...}} from params.yaml: {literal}"


def _module_in_stages(module: str) -> set[str]:
    names = set()
    for name, stage in _stages().items():
        if module in stage["deps"]:
            names |= {f"{name}@{task}" for task in TASKS} if "foreach" in DVC_YAML["stages"][name] else {name}
    return names


@pytest.fixture(scope="module")
def committed_project(tmp_path_factory) -> Path:
    """A copy of the project whose stages DVC has recorded as done (placeholder inputs and outputs)."""
    project = tmp_path_factory.mktemp("dvc_yaml")
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):  # .gitignore: DVC writes none inside artifacts/
        shutil.copy(ROOT / name, project)
    shutil.copytree(PACKAGE_ROOT, project / "distilflow", ignore=shutil.ignore_patterns("__pycache__"))
    params = load_params(ROOT / "params.yaml")
    folders = [source.path for source in params.versioning.sources.values()]
    folders += [params.paths.prepared, params.paths.teacher, params.paths.student, params.paths.export]
    for folder in folders:
        (project / folder).mkdir(parents=True, exist_ok=True)
        (project / folder / "placeholder").write_text("x")
    for stage in ("teacher_head", "distill"):
        (project / params.paths.checkpoints / stage).mkdir(parents=True)
    for task in TASKS:
        (project / params.paths.glue / "classifiers" / task).mkdir(parents=True)
        (project / params.paths.glue / "classifiers" / task / "placeholder").write_text("x")
    files = [params.paths.metrics / "distill.json", params.paths.metrics / "export.json", params.paths.metrics / "glue.json",
             params.paths.glue / "glue_report.md", params.paths.glue / "glue_scores.png"]
    files += [params.paths.glue / "tasks" / f"{task}.json" for task in TASKS]
    for file in files:
        (project / file).parent.mkdir(parents=True, exist_ok=True)
        (project / file).write_text("{}")
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                    [sys.executable, "-m", "dvc", "commit", "-f", "-q"]):
        subprocess.run(command, cwd=project, check=True, capture_output=True)
    return project


def _changed_stages(project: Path) -> set[str]:
    output = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=project, check=True,
                            capture_output=True, text=True).stdout
    return set(json.loads(output or "{}"))


@pytest.mark.parametrize("module", ["distilflow/evaluation/finetune.py", "distilflow/train/trainer.py",
                                    "distilflow/evaluation/report.py", "distilflow/cli/app.py"])
def test_editing_a_module_makes_dvc_rerun_exactly_the_stages_that_execute_it(committed_project, module):
    assert _changed_stages(committed_project) == set()
    path = committed_project / module
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    try:
        changed = _changed_stages(committed_project)
    finally:
        path.write_text(original)
    assert changed == _module_in_stages(module) and changed
