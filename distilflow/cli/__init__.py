"""`distilflow` command line. Every command reads params.yaml; `--set key=value` overrides any key.

One command per job (distilflow/jobs/): the stages of dvc.yaml (prepare, teacher, distill, glue-task,
glue-report) and the registry steps (register, promote, rollback), plus by-hand tools.
"""

from distilflow.cli import lifecycle, stages, tools  # noqa: F401  (they add their commands to the app)
from distilflow.cli.app import app, main

__all__ = ["app", "main"]
