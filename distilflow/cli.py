"""`distilflow` command line. Every command reads params.yaml; `--set key=value` overrides any key."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from distilflow.config import DEFAULT_PARAMS_PATH, Params, load_params
from distilflow.errors import DistilflowError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil BERT-family masked-LM teachers into half-depth students.")

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="params file")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override, e.g. distill.loss.temperature=4")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint")]
RestartOption = Annotated[bool, typer.Option("--restart", help="discard existing checkpoints and start over")]


def _params(path: Path, overrides: list[str] | None) -> Params:
    return load_params(path, overrides or [])


@app.command()
def config(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Print the resolved configuration (params.yaml + overrides + defaults)."""
    typer.echo(json.dumps(_params(params, set_).model_dump(mode="json"), indent=2))


@app.command()
def prepare(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Tokenize and pack the corpus (skipped when its fingerprint is unchanged)."""
    from distilflow import pipeline

    prepared = pipeline.prepare(_params(params, set_))
    typer.echo(f"prepared {prepared.meta['sequences']} sequences -> {prepared.path} (fingerprint {prepared.fingerprint})")


@app.command()
def head(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
         resume: ResumeOption = False, restart: RestartOption = False) -> None:
    """Train an MLM head for a teacher that lacks one (no-op if it has one or it is cached)."""
    from distilflow import pipeline

    config_ = _params(params, set_)
    artifact = pipeline.teacher_with_head(config_, pipeline.prepare(config_), resume=resume, restart=restart)
    state = "trained head" if artifact.head_trained else "has its own MLM head"
    typer.echo(f"teacher {state}: {artifact.path} {json.dumps(artifact.metrics)}")


@app.command()
def distill(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
            resume: ResumeOption = False, restart: RestartOption = False) -> None:
    """prepare -> teacher head (if needed) -> distill the student; tracked in MLflow."""
    from distilflow import pipeline

    result = pipeline.distill(_params(params, set_), resume=resume, restart=restart)
    typer.echo(f"student saved to {result.student_path} (teacher layers {result.teacher_layers}); "
               f"MLflow run {result.run_id}")
    typer.echo(json.dumps(result.metrics, indent=2))


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="student/teacher folder or Hub id with an MLM head")],
    teacher: Annotated[Optional[str], typer.Option(help="also report top-1 agreement with this model")] = None,
    split: Annotated[str, typer.Option(help="prepared split: test or validation")] = "test",
    max_sequences: Annotated[Optional[int], typer.Option(help="evaluate at most this many sequences")] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
) -> None:
    """Held-out masked-LM loss, accuracy and teacher agreement of any MLM, with fixed masks."""
    from distilflow import pipeline

    metrics = pipeline.evaluate(model, _params(params, set_), teacher, split, max_sequences)
    typer.echo(json.dumps(metrics, indent=2))


@app.command()
def glue(
    model: Annotated[str, typer.Option(help="model folder or Hub id to fine-tune and evaluate")],
    tasks: Annotated[Optional[str], typer.Option(help="comma-separated GLUE tasks or 'all' (default: glue.tasks)")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="baseline for retention and speed-up (cached)")] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
) -> None:
    """GLUE fine-tuning evaluation: official metrics, GLUE score, retention vs a teacher, size and speed."""
    from distilflow import pipeline

    report = pipeline.glue(_params(params, set_), model, teacher, tasks)
    typer.echo(Path(report["files"]["markdown"]).read_text())
    typer.echo(f"report: {report['files']['markdown']}, chart: {report['files']['chart']}, "
               f"metrics: {report['files']['metrics']}; MLflow run {report['mlflow_run_id']}")


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        # standalone_mode=False: our errors and Ctrl-C reach the handlers below instead of click's.
        result = typer.main.get_command(app).main(standalone_mode=False)
    except DistilflowError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        typer.secho("interrupted: run the same command with --resume to continue from the last checkpoint",
                    err=True, fg=typer.colors.YELLOW)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
