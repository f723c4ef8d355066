"""`distilflow` command line. Every command reads params.yaml; `--set key=value` overrides any key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from distilflow import runtime
from distilflow.config import DEFAULT_PARAMS_PATH, Params, load_params
from distilflow.distributed import process_group
from distilflow.errors import DistilflowError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil BERT-family masked-LM teachers into half-depth students.")

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="params file")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override, e.g. distill.loss.temperature=4")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint")]
RestartOption = Annotated[bool, typer.Option("--restart", help="discard existing checkpoints and start over")]
DiscardStaleOption = Annotated[bool, typer.Option(
    "--discard-stale", help="with --resume: drop checkpoints made with other params or data instead of stopping")]


def _params(path: Path, overrides: list[str] | None) -> Params:
    return load_params(path, overrides or [])


def _data_parallel_if_asked() -> None:
    """With $DISTILFLOW_TORCHRUN set, rerun this command under torchrun (after the params were checked)."""
    command = runtime.torchrun_command(sys.argv[1:])
    if command:
        raise SystemExit(subprocess.run(command).returncode)


@app.command()
def config(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Print the resolved configuration (params.yaml + overrides + defaults)."""
    typer.echo(json.dumps(_params(params, set_).model_dump(mode="json"), indent=2))


@app.command()
def prepare(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Tokenize and pack the corpus (skipped when its fingerprint is unchanged)."""
    from distilflow import pipeline

    prepared = pipeline.prepare_stage(_params(params, set_))
    typer.echo(f"prepared {prepared.meta['sequences']} sequences -> {prepared.path} (fingerprint {prepared.fingerprint})")


@app.command()
def head(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None, resume: ResumeOption = False,
         restart: RestartOption = False, discard_stale: DiscardStaleOption = False) -> None:
    """The complete masked-LM teacher in paths.teacher: an MLM head trained if it lacks one (cached)."""
    from distilflow import pipeline

    config_ = _params(params, set_)
    _data_parallel_if_asked()
    policy = pipeline.ResumePolicy(resume, restart, discard_stale)
    artifact = pipeline.teacher_with_head(config_, pipeline.prepare(config_), policy)
    state = "trained head" if artifact.head_trained else "has its own MLM head"
    if process_group().is_main:
        typer.echo(f"teacher {state}: {artifact.path} {json.dumps(artifact.metrics)}")


@app.command()
def distill(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None, resume: ResumeOption = False,
            restart: RestartOption = False, discard_stale: DiscardStaleOption = False) -> None:
    """prepare -> teacher head (if needed) -> distill the student; tracked in MLflow."""
    from distilflow import pipeline

    config_ = _params(params, set_)
    _data_parallel_if_asked()
    result = pipeline.distill(config_, pipeline.ResumePolicy(resume, restart, discard_stale))
    if process_group().is_main:
        tracked = f"MLflow run {result.run_id}" if result.run_id else "not tracked (tracking.enabled: false)"
        typer.echo(f"student saved to {result.student_path} (teacher layers {result.teacher_layers}); {tracked}")
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


@app.command("glue-task")
def glue_task(
    task: Annotated[str, typer.Argument(help="GLUE task name, e.g. rte")],
    params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
) -> None:
    """Pipeline stage: the student (paths.student) and the teacher baseline (cached) on one GLUE task."""
    from distilflow import pipeline

    results = pipeline.glue_task(_params(params, set_), task)
    typer.echo(", ".join(f"{role} {task} {100 * result['score']:.1f}" for role, result in results.items()))


@app.command("glue-report")
def glue_report(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Pipeline stage: GLUE score, retention, size and speed of the student vs the teacher."""
    from distilflow import pipeline

    report = pipeline.glue_report(_params(params, set_))
    typer.echo(Path(report["files"]["markdown"]).read_text())


@app.command()
def pin(params: ParamsOption = DEFAULT_PARAMS_PATH) -> None:
    """Pin the corpus, GLUE data and teacher with DVC (versioning.sources); print their hashes."""
    from distilflow import versioning

    for name, md5 in versioning.pin_sources(_params(params, None).versioning).items():
        typer.echo(f"{name}: {md5}")


@app.command("pipeline")
def run_pipeline() -> None:
    """Run the whole pipeline once as a Prefect flow (pin -> dvc.yaml stages -> register -> promote)."""
    from flows.pipeline import pipeline_flow

    _params(DEFAULT_PARAMS_PATH, None)  # bad params: one line now, not a failed flow run with its traceback
    result = pipeline_flow()
    typer.echo(f"registered version {result['version']} ({'new' if result['registered_new'] else 'unchanged'}); "
               f"champion {'moved' if result['promoted'] else 'unchanged'}: {result['reason']}; "
               f"report {result['report']}")


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="schedule, e.g. '0 3 * * 0' (Sundays 03:00)")],
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Serve the pipeline as a Prefect deployment on a cron schedule; one run at a time, later ones wait."""
    import prefect
    from prefect.settings import PREFECT_API_URL

    from flows.pipeline import scheduled_deployment

    deployment = scheduled_deployment(cron, _params(params, None).orchestration)
    if not PREFECT_API_URL.value():
        # The throwaway server a plain run uses has no scheduler: schedules need a standing one.
        raise DistilflowError("schedules need a Prefect server: run `prefect server start` in another terminal, "
                              "then `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api` and serve again")
    prefect.serve(deployment)


@app.command()
def models(params: ParamsOption = DEFAULT_PARAMS_PATH) -> None:
    """Registered student versions: aliases, GLUE score, retention, latency."""
    from rich.console import Console
    from rich.table import Table

    from distilflow import registry, tracking

    config_ = _params(params, None)
    tracking.configure(config_.tracking)
    rows = registry.list_versions(config_.registry.model_name)
    table = Table(title=config_.registry.model_name)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    Console().print(table)


@app.command()
def promote(version: Annotated[str, typer.Argument(help="registry version to make champion")],
            params: ParamsOption = DEFAULT_PARAMS_PATH) -> None:
    """Make VERSION the champion (by hand, whatever the promotion rule says)."""
    from distilflow import registry, tracking

    config_ = _params(params, None)
    tracking.configure(config_.tracking)
    registry.promote(config_.registry.model_name, version)
    typer.echo(f"{config_.registry.model_name}@champion -> version {version}")


@app.command()
def rollback(params: ParamsOption = DEFAULT_PARAMS_PATH) -> None:
    """Give `champion` back to the previous champion."""
    from distilflow import registry, tracking

    config_ = _params(params, None)
    tracking.configure(config_.tracking)
    version = registry.rollback(config_.registry.model_name)
    typer.echo(f"{config_.registry.model_name}@champion -> version {version} (rolled back)")


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        # standalone_mode=False: our errors and Ctrl-C reach the handlers below instead of click's.
        result = typer.main.get_command(app).main(standalone_mode=False)
    except DistilflowError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(runtime.EXIT_BAD_INPUT)
    except typer.TyperException as error:  # usage errors: typer 0.29 vendors its own click
        error.show()
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        typer.secho("interrupted: run the same command with --resume to continue from the last checkpoint",
                    err=True, fg=typer.colors.YELLOW)
        sys.exit(130)
    except Exception as error:
        if not _is_cuda_out_of_memory(error):
            raise
        # One line the orchestrator recognises; it retries with half the micro-batch (runtime.BATCH_SPLIT_ENV).
        typer.secho(f"{runtime.OUT_OF_MEMORY_MARKER}: lower the micro_batch_size (and raise "
                    "gradient_accumulation_steps), then run again with --resume", err=True, fg=typer.colors.RED)
        sys.exit(runtime.EXIT_OUT_OF_MEMORY)
    sys.exit(result if isinstance(result, int) else 0)


def _is_cuda_out_of_memory(error: Exception) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError)


if __name__ == "__main__":
    main()
