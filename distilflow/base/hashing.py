"""Identities of things that decide a result: settings, files, and the code that runs.

`executed_modules` reads a module's imports (transitively, inside distilflow) from its source, so that
dvc.yaml's code dependencies and the GLUE cache key can name exactly the modules a job executes.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = "distilflow"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../distilflow


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (configs, file hashes)."""
    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def module_file(module: str) -> Path | None:
    """distilflow.a.b -> distilflow/a/b.py (or the package's __init__.py); None if no such module."""
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_ROOT / "__init__.py"
    for candidate in (PACKAGE_ROOT.joinpath(*parts).with_suffix(".py"), PACKAGE_ROOT.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(module: str, top_level_only: bool) -> set[str]:
    """The distilflow modules `module` imports (anywhere in its code, or only at module level)."""
    tree = ast.parse(module_file(module).read_text())
    statements = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in statements:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == PACKAGE:
            found.add(node.module)
            # `from distilflow.x import y` imports the submodule y when there is one
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_file(f"{node.module}.{alias.name}") is not None)
    return {name for name in found if module_file(name) is not None}


def _with_packages(module: str) -> set[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts) + 1)}


@cache
def executed_modules(entry: str, lazy_package: str | None = None, record_keeping: str | None = None) -> tuple[str, ...]:
    """Every distilflow module that running `entry` may execute: its imports, theirs, and so on.

    Imports inside functions count (they run when the function is called), except in the modules of
    `lazy_package` (the CLI, whose commands import their job only when they run). The modules of
    `record_keeping` (and what only they import) are left out: they say where results are logged."""
    seen: set[str] = set()
    pending = _with_packages(entry)
    while pending:
        module = pending.pop()
        if module in seen or (record_keeping and _inside(module, record_keeping)):
            continue
        seen.add(module)
        lazy = lazy_package is not None and _inside(module, lazy_package)
        for name in _imported_modules(module, top_level_only=lazy):
            pending |= _with_packages(name) - seen
    return tuple(sorted(seen))


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# What a stage's outputs can depend on excludes the record keeping: MLflow runs, DVC pins, the registry
# (distilflow/ops/). A stage calls it only to say where its results went, never to compute them.
RECORD_KEEPING = f"{PACKAGE}.ops"
STAGE_COMMANDS = f"{PACKAGE}.cli.stages"  # the module of every stage's command (cli/__init__.COMMANDS)


def stage_modules(job: str) -> tuple[str, ...]:
    """The modules a dvc.yaml stage's outputs can depend on: the CLI's entry point and the stage commands'
    module (each command imports its job only when it runs), then the job's (distilflow/jobs/<job>.py)."""
    cli = f"{PACKAGE}.cli"
    modules = set(executed_modules(STAGE_COMMANDS, lazy_package=cli, record_keeping=RECORD_KEEPING))
    modules |= set(executed_modules(f"{PACKAGE}.jobs.{job}", record_keeping=RECORD_KEEPING))
    return tuple(sorted(modules))


def source_files(modules: tuple[str, ...] | list[str]) -> list[Path]:
    return sorted({module_file(module) for module in modules})


def code_version(entry: str, ignore: tuple[str, ...] = ()) -> str:
    """A hash of the code of every module `entry` executes (except the modules and packages in `ignore`):
    changes when any of that code does, not when a comment or a docstring does."""
    digest = hashlib.sha256()
    for module in executed_modules(entry):
        if any(_inside(module, ignored) for ignored in ignore):
            continue
        digest.update(module.encode())
        digest.update(code_text(module_file(module).read_text()).encode())
    return digest.hexdigest()[:16]


def code_text(source: str) -> str:
    """What a module's source computes, as text: its syntax tree without docstrings (comments are not in it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)
