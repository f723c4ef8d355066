"""Your own task: `distilflow task NAME` (stage task@NAME) distils your fine-tuned classifier for a task of
params.yaml's `tasks:` into a small student, scored, exported, registered as distilflow-NAME and promoted by rule."""

from __future__ import annotations

from typing import Annotated

import typer

from distilflow.cli.app import ParamsOption, SetOption, app, read_params
from distilflow.config.load import DEFAULT_PARAMS_PATH

PANEL = "Your own task"


@app.command(rich_help_panel=PANEL)
def task(name: Annotated[str, typer.Argument(help="a task of params.yaml's tasks:")],
         params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Stage task@NAME: your teacher classifier's soft targets, the student fine-tuned on them over seeds, its
    report, ONNX export and registration as distilflow-NAME."""
    from distilflow.jobs import task as job

    outcome = job.run(read_params(params, set_), name)
    report, export = outcome.report, outcome.report["export"]
    retention = f", retention {report['retention']:.1%}" if report["retention"] is not None else ""
    speed = export.get("latency_ms_b1_teacher_pytorch", 0) / export.get(f"latency_ms_b1_student_{report['served']}", 1)
    typer.echo(f"task {name}: teacher {report['teacher']['score']:.4f}, student {report['student']['score']:.4f}"
               f"{retention}; {export['parameters_student'] / 1e6:.1f}M parameters "
               f"({export['parameters_student'] / export['parameters_teacher']:.0%} of the teacher's), "
               f"{speed:.1f}x its speed at batch 1 (served from {report['served']})")
    if outcome.version is not None:
        typer.echo(f"distilflow-{name} version {outcome.version} ({outcome.promotion})")
