"""By-hand commands: the resolved config, MLM and GLUE evaluation of any model, pinning data."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Optional

import typer

from distilflow.cli.app import (
    ParamsOption,
    SetOption,
    app,
    read_params,
)
from distilflow.config.load import DEFAULT_PARAMS_PATH

PANEL = "By hand"


class Split(str, Enum):
    test = "test"
    validation = "validation"


@app.command(rich_help_panel=PANEL)
def config(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Print the resolved configuration (params.yaml + overrides + defaults)."""
    typer.echo(json.dumps(read_params(params, set_).model_dump(mode="json"), indent=2))


@app.command(rich_help_panel=PANEL)
def evaluate(
    model: Annotated[str, typer.Option(help="student/teacher folder or Hub id with an MLM head")],
    teacher: Annotated[Optional[str], typer.Option(help="also report top-1 agreement with this model")] = None,
    split: Annotated[Split, typer.Option(help="prepared split")] = Split.test,
    max_sequences: Annotated[Optional[int], typer.Option(min=1, help="evaluate at most this many sequences")] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
) -> None:
    """Held-out masked-LM loss, accuracy and teacher agreement of any MLM, with fixed masks."""
    from distilflow.jobs import evaluate as job

    typer.echo(json.dumps(job.run(read_params(params, set_), model, teacher, split.value, max_sequences), indent=2))


@app.command(rich_help_panel=PANEL)
def glue(
    model: Annotated[str, typer.Option(help="model folder or Hub id to fine-tune and evaluate")],
    tasks: Annotated[Optional[str], typer.Option(help="comma-separated GLUE tasks or 'all' (default: glue.tasks)")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="baseline for retention and speed-up (cached)")] = None,
    record: Annotated[bool, typer.Option(help="also copy the teacher's baselines (without --teacher: the model's) "
                                              "into paths.glue_baselines (to commit: a new machine reuses them)")] = False,
    params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
) -> None:
    """GLUE fine-tuning evaluation: official metrics, GLUE score, retention vs a teacher, size and speed."""
    from distilflow.evaluation.report import CHART_FILE, MARKDOWN_FILE
    from distilflow.jobs import glue as job

    config_ = read_params(params, set_)
    report = job.run(config_, model, teacher, tasks, record=record)
    folder = job.by_hand_folder(config_)
    typer.echo((folder / MARKDOWN_FILE).read_text())
    typer.echo(f"report: {folder / MARKDOWN_FILE}, chart: {folder / CHART_FILE}, metrics: {folder / 'glue.json'}; "
               f"MLflow run {report.mlflow_run_id}")


@app.command(rich_help_panel=PANEL)
def pin(params: ParamsOption = DEFAULT_PARAMS_PATH) -> None:
    """Pin the corpus, GLUE data and teacher (versioning.sources) and each task's data and teacher with DVC; print
    their hashes."""
    from distilflow.ops import task_pins

    for name, md5 in task_pins.pin_inputs(read_params(params, None)).items():
        typer.echo(f"{name}: {md5}")
