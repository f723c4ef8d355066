"""`distilflow` command line. Every command reads params.yaml; `--set key=value` overrides any key.

One command per job (distilflow/jobs/): the stages of dvc.yaml (prepare, teacher, distill, glue-task,
glue-report, export), the registry steps (register, promote, rollback) and by-hand tools. A command's
module is imported only when it is the one asked for, so that a stage executes no other command's code
and DVC reruns no stage for an edit to, say, `rollback` (dvc.yaml's code dependencies are derived from
this: tests/test_dvc_yaml.py).
"""

from __future__ import annotations

import importlib
import sys

from distilflow.cli.app import app
from distilflow.cli.app import main as _run_app

COMMANDS = {  # module in distilflow/cli/ -> the commands it defines (a test keeps this equal to the app)
    "stages": ("prepare", "teacher", "distill", "glue-task", "glue-report", "export"),
    "lifecycle": ("pipeline", "serve", "deploy", "models", "promote", "rollback", "register"),
    "tools": ("config", "evaluate", "glue", "pin"),
    "sweeps": ("sweep",),
    "tasks": ("task",),
}


def load_commands(argv: list[str]) -> None:
    """Import the module of the command in argv, or every command module (for --help, a typo, no command)."""
    asked = argv[0] if argv else None
    modules = [module for module, names in COMMANDS.items() if asked in names] or list(COMMANDS)
    for module in modules:
        importlib.import_module(f"distilflow.cli.{module}")


def main() -> None:
    load_commands(sys.argv[1:])
    _run_app()


__all__ = ["COMMANDS", "app", "load_commands", "main"]
