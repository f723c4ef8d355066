"""Your own task: `distilflow task NAME` (stage task@NAME) distils your fine-tuned classifier for a task of
params.yaml's `tasks:` into a small student, scored, exported, registered as distilflow-NAME and promoted by rule.
`distilflow task path/NAME.yaml` takes the task's entry from its own file instead (paths in it relative to the
project, as params.yaml's are)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from distilflow.cli.app import ParamsOption, SetOption, app, read_params
from distilflow.config import Params
from distilflow.config.load import DEFAULT_PARAMS_PATH
from distilflow.errors import DistilflowError, first_line

PANEL = "Your own task"


@app.command(rich_help_panel=PANEL)
def task(name: Annotated[str, typer.Argument(help="a task of params.yaml's tasks:, or a task's own YAML file")],
         params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
         pin: Annotated[bool, typer.Option(help="pin the task's data and teacher with DVC first (--no-pin: the stage "
                                                "task@NAME, whose inputs the pipeline's pin has pinned)")] = True) -> None:
    """Stage task@NAME: your data and teacher classifier pinned by DVC, the teacher's soft targets, the student
    fine-tuned on them over seeds, its report, ONNX export and registration as distilflow-NAME."""
    from distilflow.jobs import task as job
    from distilflow.ops import task_pins

    config_, name = _with_task(name, params, set_)
    if pin:
        for source, md5 in task_pins.pin_task(name, job.task_config(config_, name)).items():
            typer.echo(f"pinned {name}.{source}: {md5}")
    outcome = job.run(config_, name)
    report, export = outcome.report, outcome.report["export"]
    retention = f", retention {report['retention']:.1%}" if report["retention"] is not None else ""
    speed = export.get("latency_ms_b1_teacher_pytorch", 0) / export.get(f"latency_ms_b1_student_{report['served']}", 1)
    typer.echo(f"task {name}: teacher {report['teacher']['score']:.4f}, student {report['student']['score']:.4f}"
               f"{retention}; {export['parameters_student'] / 1e6:.1f}M parameters "
               f"({export['parameters_student'] / export['parameters_teacher']:.0%} of the teacher's), "
               f"served from {report['served']}: {speed:.1f}x the teacher's PyTorch speed at batch 1")
    if outcome.version is not None:
        typer.echo(f"distilflow-{name} version {outcome.version} ({outcome.promotion})")


def _with_task(name: str, params: Path, overrides: list[str] | None) -> tuple[Params, str]:
    """params.yaml's settings, with the task of a YAML file added under its file name when NAME is one."""
    file = Path(name)
    if file.suffix not in (".yaml", ".yml"):
        return read_params(params, overrides), name
    if not file.is_file():
        raise DistilflowError(f"task file '{file}' not found: give a task of params.yaml's tasks: or a task's YAML file")
    try:
        entry = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise DistilflowError(f"task file '{file}' is not valid YAML ({first_line(error)}): fix its syntax") from None
    if not isinstance(entry, dict):
        raise DistilflowError(f"task file '{file}' must be a mapping (data:, text:, label:, teacher_classifier:, ...)")
    return read_params(params, [*(overrides or []), f"tasks.{file.stem}={json.dumps(entry)}"]), file.stem
