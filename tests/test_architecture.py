"""Imports point down: each package sits on a floor and imports only from floors below it (or itself).

The floors are drawn in docs/architecture.md; a new package gets a floor here and there."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLOORS = {  # top-level package, or distilflow's subpackage/module -> floor
    "errors": 0,                      # the one exception users see as a line
    "base": 1,                        # generic helpers: files, hashing, model folders, devices, the stage's env
    "config": 2,                      # the typed params.yaml
    "data": 3,                        # corpus, prepared data, masking, batching
    "train": 4, "evaluation": 4,      # the ML core: distillation, GLUE fine-tuning and scoring
    "export": 5, "serving": 5,        # ONNX and the registered model's pyfunc
    "ops": 6,                         # record keeping: MLflow, DVC, the registry
    "steps": 7,                       # what several jobs share: a tracked training session, a tracked GLUE task
    "jobs": 8,                        # one job per stage and registry step
    "tasks": 9, "flows": 10,          # Prefect: thin tasks, composing flows
    "cli": 11, "__main__": 12,        # the `distilflow` command, on top of everything
}
MAX_LINES = 250  # a module a reader takes in at once
SOURCES = [path for folder in ("distilflow", "tasks", "flows") for path in sorted((ROOT / folder).rglob("*.py"))]


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "distilflow":
        return parts[1] if len(parts) > 1 else None  # distilflow/__init__.py holds only the version
    return parts[0] if parts[0] in ("tasks", "flows") else None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_imports_point_down(path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    own = _package(module)
    if own is None:  # distilflow/__init__.py: the version only
        assert not [name for name in _imports(path) if _package(name)]
        return
    assert own in FLOORS, f"{module}: give its package a floor in FLOORS and docs/architecture.md"
    upward = [name for name in _imports(path)
              if _package(name) not in (None, own) and FLOORS[_package(name)] >= FLOORS[own]]
    assert upward == [], f"{module} (floor {FLOORS[own]}) imports from its floor or above: {upward}"


def test_a_job_never_imports_another_job():
    """What jobs share goes down to distilflow/steps/: a stage's code is then only its own (DVC reruns a stage
    for its own code's changes) and a job reads as one recipe."""
    for path in sorted((ROOT / "distilflow" / "jobs").glob("*.py")):
        module = f"distilflow.jobs.{path.stem}"
        assert not [name for name in _imports(path) if name.startswith("distilflow.jobs.") and name != module], module


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_is_longer_than_a_reader_takes_in_at_once(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"{path.relative_to(ROOT)}: split it"
