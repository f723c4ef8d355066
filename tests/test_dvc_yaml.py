"""dvc.yaml pins exactly what each stage runs: its code dependencies are the modules its command
executes (derived here from the imports, less the record keeping in distilflow/ops/), its params the
settings its code reads, its paths come from params.yaml, and editing a module makes `dvc status` list
exactly the stages whose outputs it can change."""

import ast
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from distilflow.base.hashing import PACKAGE_ROOT, module_file, source_files, stage_modules
from distilflow.base.provenance import flatten
from distilflow.config import Params, TaskConfig
from distilflow.config.load import load_params
from distilflow.ops import task_pins
from tests.conftest import ROOT

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
TASKS = load_params(ROOT / "params.yaml").glue.tasks
FOREACH = {"${glue.tasks}": TASKS, "${tasks}": list(load_params(ROOT / "params.yaml").tasks)}  # one stage per item


def _instances(name: str) -> set[str]:
    """A stage's names in dvc.lock: name, or name@item for each item of its foreach."""
    stage = DVC_YAML["stages"][name]
    return {f"{name}@{item}" for item in FOREACH[stage["foreach"]]} if "foreach" in stage else {name}


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


# Settings a stage never computes with: where results go (paths are deps and outs, the rest is record
# keeping or scheduling), and what only shows progress.
NOT_INPUTS = ("paths", "tracking", "registry", "orchestration", "versioning", "glue.progress")
# Per stage, settings it reads without their changing its outputs.
READ_BUT_NOT_INPUTS = {
    "glue": ("glue.tasks",  # foreach: each stage is one task of the list
             "glue.latency"),  # only checked up front (the report measures latency), so a bad one fails in seconds
    # foreach: each stage is one task (its own entry, tasks.${key}); glue's fine-tuning settings are the recipe's
    # base, less what a task sets itself (data, selection) and the latency the export settings give
    # (teacher.model: the pipeline's teacher, read by a GLUE helper the task never calls)
    "task": ("tasks", "glue.tasks", "glue.source", "glue.selection", "glue.latency", "teacher.model"),
}
PROPERTIES = {"distill.loss.needs_teacher_logits": ("distill.loss.alpha_ce", "distill.loss.alpha_mse")}


def _settings_read(module: str) -> set[str]:
    """`params.a.b.c` chains in a module's code (a trailing `.model_dump()` reads the whole section)."""
    tree = ast.parse(module_file(module).read_text())
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        parts = []
        while isinstance(node, ast.Attribute):
            parts.insert(0, node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "params":
            while parts and parts[-1].startswith("model_"):
                parts.pop()
            found.update(PROPERTIES.get(".".join(parts), [".".join(parts)]) if parts else [])
    return found


def _leaves(model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        nested = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        names += _leaves(field.annotation, f"{prefix}{name}.") if nested else [prefix + name]
    return names


def _covered(keys) -> set[str]:
    """Every leaf setting that the keys (sections or settings) name."""
    return {leaf for leaf in _leaves() if any(leaf == key or leaf.startswith(key + ".") for key in keys)}


@pytest.mark.parametrize("name", list(_stages()))
def test_params_are_exactly_the_settings_the_stage_reads(name):
    stage = _stages()[name]
    read = set().union(*(_settings_read(module) for module in stage_modules(_job(stage))))
    ignored = _covered(NOT_INPUTS + READ_BUT_NOT_INPUTS.get(name, ()))
    listed, needed = _covered(stage.get("params", [])), _covered(read) - ignored
    assert not listed & _covered(NOT_INPUTS), f"{name}: params that only say where results go"
    assert listed - ignored == needed, (f"dvc.yaml stage {name}: read but not listed {sorted(needed - listed)}, "
                                        f"listed but not read {sorted(listed - ignored - needed)}")


def test_no_output_keeps_dvc_from_its_run_cache():
    """A persistent output (resumable checkpoints were) makes DVC run a stage again instead of restoring it."""
    for name, stage in _stages().items():
        persistent = [next(iter(out)) for out in stage.get("outs", []) if isinstance(out, dict)
                      and next(iter(out.values())).get("persist")]
        assert persistent == [], f"stage {name}: {persistent}"


def test_executed_modules_follow_imports_not_the_whole_package():
    prepare = set(_expected_code("prepare"))
    assert {"distilflow/jobs/prepare.py", "distilflow/data/prepared.py", "distilflow/data/corpus.py"} <= prepare
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
            names |= _instances(name)
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
    """`dvc status`, through DVC's API in this process (a `dvc` process per call cost ~1.3 s, 16 times)."""
    from contextlib import chdir

    from dvc.repo import Repo

    with chdir(project), Repo() as repo:  # as the CLI runs it; a new Repo each time: no status remembered
        return set(repo.status())


GLUE_STAGES = {f"glue@{task}" for task in TASKS}
ALL_STAGES = {"prepare", "teacher", "distill", "glue_report", "export"} | GLUE_STAGES


@pytest.mark.parametrize(("module", "expected"), [
    ("distilflow/cli/lifecycle.py", set()),  # pipeline, promote, rollback, ...: no stage runs them
    ("distilflow/cli/tools.py", set()),
    ("distilflow/ops/tracking.py", set()),  # record keeping
    ("distilflow/evaluation/report.py", {"glue_report"}),  # rendering
    ("distilflow/export/onnx_export.py", {"export"}),
    ("distilflow/train/trainer.py", {"teacher", "distill"}),
    ("distilflow/evaluation/finetune.py", GLUE_STAGES),
    ("distilflow/cli/app.py", ALL_STAGES),  # every command's entry point
])
def test_editing_a_module_makes_dvc_rerun_exactly_the_stages_it_can_change(committed_project, module, expected):
    assert _changed_stages(committed_project) == set()
    path = committed_project / module
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    try:
        changed = _changed_stages(committed_project)
    finally:
        path.write_text(original)
    assert changed == expected == _module_in_stages(module)


def test_the_committed_lock_and_metrics_are_those_of_the_committed_code():
    """dvc.lock and metrics/ are committed outputs: each stage's code in the lock is the code here (its md5), each
    metrics file is the one the lock names, and the lock has the stages and code deps of dvc.yaml. A change to a
    stage's code needs `make run` (or `dvc repro`) and the new dvc.lock and metrics/ committed with it."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    assert set(lock) == set().union(*(_instances(name) for name in DVC_YAML["stages"]))
    stale = []
    for name, stage in lock.items():
        for entry in stage.get("deps", []):
            path = ROOT / entry["path"]
            if entry["path"].startswith("distilflow/") and (
                    not path.is_file() or hashlib.md5(path.read_bytes()).hexdigest() != entry["md5"]):
                stale.append(f"{name}: {entry['path']}")
        for entry in stage.get("outs", []):
            path = ROOT / entry["path"]
            if entry["path"].startswith("metrics/") and hashlib.md5(path.read_bytes()).hexdigest() != entry["md5"]:
                stale.append(f"{name}: {entry['path']}")
    assert not stale, f"dvc.lock is not that of this code (run `make run`, commit dvc.lock and metrics/): {stale[:8]}"


def test_a_tasks_stage_reruns_when_its_data_changes_and_is_pinned_again(committed_project, tmp_path, monkeypatch):
    """task@NAME depends on the task's pinned copies (ops/task_pins.py), so the user's edited file is seen by `dvc
    status` once `distilflow pin` (or `distilflow task`) has copied it in, and not before."""
    project = tmp_path / "project"
    shutil.copytree(committed_project, project, symlinks=True)
    monkeypatch.chdir(project)
    (project / "mine" / "teacher").mkdir(parents=True)
    (project / "mine" / "teacher" / "config.json").write_text("{}")
    (project / "mine" / "train.csv").write_text("review,verdict\ngood,liked\n")
    (project / "mine" / "test.csv").write_text("review,verdict\nbad,disliked\n")
    entry = {"data": {"files": {"train": "mine/train.csv", "report": "mine/test.csv"}}, "text": ["review"],
             "label": "verdict", "teacher_classifier": "mine/teacher"}
    params = yaml.safe_load(Path("params.yaml").read_text()) | {"tasks": {"reviews": entry}}
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    task_pins.pin_task("reviews", TaskConfig.model_validate(entry))
    for out in ("classifier/placeholder", "export/placeholder", "report.json"):
        (project / "artifacts" / "tasks" / "reviews" / out).parent.mkdir(parents=True, exist_ok=True)
        (project / "artifacts" / "tasks" / "reviews" / out).write_text("x")
    (project / "metrics" / "tasks").mkdir(parents=True, exist_ok=True)
    (project / "metrics" / "tasks" / "reviews.json").write_text("{}")
    subprocess.run([sys.executable, "-m", "dvc", "commit", "-f", "-q", "task@reviews"], check=True, capture_output=True)
    assert "task@reviews" not in _changed_stages(project)

    (project / "mine" / "train.csv").write_text("review,verdict\ngood,liked\nfine,liked\n")
    assert "task@reviews" not in _changed_stages(project)  # the stage reads the pinned copy, not yet the new file
    task_pins.pin_task("reviews", TaskConfig.model_validate(entry))
    assert "task@reviews" in _changed_stages(project)
