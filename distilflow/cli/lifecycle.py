"""The lifecycle around the stages: the whole pipeline (once, served on a schedule, or deployed to a
work pool), and the registry: register, list, promote, roll back."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from distilflow.cli.app import (
    ParamsOption,
    SetOption,
    app,
    read_params,
)
from distilflow.config.load import DEFAULT_PARAMS_PATH
from distilflow.errors import DistilflowError

PANEL = "Pipeline and registry"


@app.command("pipeline", rich_help_panel=PANEL)
def run_pipeline(set_: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="run with this value, as a DVC experiment: params.yaml is left as it is")] = None,
                 ) -> None:
    """Run the whole pipeline once as a Prefect flow (pin -> dvc.yaml stages -> register -> promote)."""
    from distilflow.ops import dvc
    from flows.pipeline import run_pipeline as run_flow
    from tasks.run_records import wall_time_table

    started = time.perf_counter()
    # Bad params, a missing data source or a Prefect server that is not there: one line now, not a failed flow
    params = read_params(DEFAULT_PARAMS_PATH, set_)
    dvc.require_sources(params.versioning)
    _require_reachable_prefect_server()
    result = run_flow(overrides=set_ or [])
    typer.echo("\n".join(wall_time_table(result["stages"], result["seconds"], result["total_seconds"])))
    command_seconds = time.perf_counter() - started
    typer.echo(f"command total (Prefect's start-up included): {command_seconds:.0f} s")
    _record_run_times(params, set_ or [], result, command_seconds)
    typer.echo(f"registered version {result['version']} ({'new' if result['registered_new'] else 'unchanged'}); "
               f"champion {'moved' if result['promoted'] else 'unchanged'}: {result['reason']}; "
               f"report {result['report']}")


def _record_run_times(params, overrides: list[str], result: dict, command_seconds: float) -> None:
    """The run's wall times as a result file (what docs/benchmarks.md's `make run` figures are copied from),
    with what they were measured on."""
    from datetime import datetime, timezone

    from distilflow.base.files import write_json
    from distilflow.base.provenance import git_commit
    from distilflow.evaluation.latency import machine

    write_json(params.paths.glue.parent / "pipeline_run.json", {
        "command": "distilflow pipeline", "overrides": overrides, "seconds": result["seconds"],
        "stages": result["stages"], "flow_seconds": result["total_seconds"], "command_seconds": command_seconds,
        "commit": git_commit(), **machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})


CronOption = Annotated[Optional[str], typer.Option(help="cron schedule (default: orchestration.schedule)")]


@app.command(rich_help_panel=PANEL)
def serve(cron: CronOption = None, params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Serve the pipeline's deployment from this process on its schedule; one run at a time, later ones wait."""
    import prefect

    from flows.pipeline import checked_cron, pipeline_deployment

    orchestration = read_params(params, set_).orchestration
    checked_cron(cron or orchestration.schedule)
    _require_prefect_server()
    prefect.serve(pipeline_deployment(orchestration, cron, overrides=set_))


@app.command(rich_help_panel=PANEL)
def deploy(pool: Annotated[str, typer.Option(help="Prefect work pool whose workers run it (type process)")],
           cron: CronOption = None, params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Create the pipeline's deployment on a work pool: `prefect worker start --pool POOL` runs it here."""
    from flows.pipeline import checked_cron, pipeline_deployment

    orchestration = read_params(params, set_).orchestration
    checked_cron(cron or orchestration.schedule)
    _require_prefect_server()
    deployment = pipeline_deployment(orchestration, cron, work_pool=pool, overrides=set_)
    deployment_id = deployment.apply()
    typer.echo(f"deployment {deployment.name} ({deployment_id}) on work pool {pool}: "
               f"start a worker with `prefect worker start --pool {pool}` in this folder")


def _require_prefect_server() -> None:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        # The throwaway server a plain run uses has no scheduler: schedules need a standing one.
        raise DistilflowError("schedules need a Prefect server: run `prefect server start` in another terminal, "
                              "then `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api` and try again")
    _require_reachable_prefect_server()


def _require_reachable_prefect_server() -> None:
    """A PREFECT_API_URL that answers nothing: one line now, not Prefect's retries and a long traceback."""
    import urllib.error
    import urllib.request

    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return  # a run of its own starts Prefect's temporary server
    try:
        urllib.request.urlopen(url.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        return  # something answers: Prefect's own client says what is wrong with it
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise DistilflowError(
            f"no Prefect server answers at PREFECT_API_URL={url} ({reason}): start it (`prefect server start`), or "
            "unset PREFECT_API_URL (`prefect config unset PREFECT_API_URL`) to let a run start its own") from None


@app.command(rich_help_panel=PANEL)
def models(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Registered versions: aliases, score (GLUE, or a task's for distilflow-<task>), retention, latency."""
    from rich.console import Console
    from rich.table import Table

    from distilflow.jobs import promote

    config_ = read_params(params, set_)
    rows = promote.versions(config_)
    table = Table(title=config_.registry.model_name)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    Console().print(table)


@app.command(rich_help_panel=PANEL)
def promote(version: Annotated[str, typer.Argument(help="registry version to make champion")],
            params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Make VERSION the champion (by hand, whatever the promotion rule says)."""
    from distilflow.jobs import promote as job

    if not version.isdigit():
        raise DistilflowError(f"version '{version}' is not a registry version number: pick one from `distilflow models`")
    config_ = read_params(params, set_)
    job.to_version(config_, version)
    typer.echo(f"{config_.registry.model_name}@champion -> version {version}")


@app.command(rich_help_panel=PANEL)
def rollback(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Give `champion` back to the previous champion."""
    from distilflow.jobs import promote as job

    config_ = read_params(params, set_)
    version, moved = job.rollback(config_)
    if moved:
        typer.echo(f"{config_.registry.model_name}@champion -> version {version} (rolled back)")
    else:
        typer.echo(f"{config_.registry.model_name}@champion was already version {version}: nothing changed")


@app.command(rich_help_panel=PANEL)
def register(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Register the student (after glue-report) as `challenger`, then apply the promotion rule."""
    from distilflow.jobs import promote
    from distilflow.jobs import register as job

    config_ = read_params(params, set_)
    registration = job.run(config_)
    decision = promote.by_rule(config_, registration.version)
    typer.echo(f"{config_.registry.model_name} version {registration.version} "
               f"({'new, alias challenger' if registration.created else 'already registered'}); "
               f"champion {'moved' if decision.promote else 'unchanged'}: {decision.reason}")
