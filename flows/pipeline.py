"""The pipeline as one Prefect flow: pin data -> the stages of dvc.yaml -> register -> promote (a run with
overrides: the stages as one DVC experiment, params.yaml left as it is).

The steps between pinning and registering are whatever dvc.yaml defines (prepare, teacher, distill,
one GLUE stage per task, the report), in dependency order, each in its own process, each skipped
when nothing it depends on changed. Run it from the project root:

    distilflow pipeline                      # once
    distilflow serve                         # on orchestration.schedule, one run at a time
    distilflow deploy --pool distilflow      # the same deployment, run by a work pool's workers
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from prefect import flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from distilflow.config import OrchestrationConfig
from distilflow.errors import DistilflowError, first_line
from distilflow.ops.promotion_rule import Decision
from tasks.data import pin_data, push_data
from tasks.dvc_stages import list_stages, reproduce_experiment, reproduce_stage
from tasks.promotion import promote_by_rule, register_student
from tasks.run_records import (
    close_pipeline_run,
    load_project_params,
    log_headline_metrics,
    open_pipeline_run,
    publish_report,
    record_inputs,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/pipeline.py:pipeline_flow"
# Without PREFECT_API_URL a flow starts Prefect's temporary server, which creates and migrates its
# database on first use: 22-25 s on a fresh 2-core machine, past Prefect's default of 20 s.
TEMPORARY_SERVER_STARTUP_SECONDS = 180


class Stopwatch:
    """Wall time of each named step, in the order they ran."""

    def __init__(self):
        self.started, self.seconds = time.perf_counter(), {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start

    def total(self) -> float:
        return time.perf_counter() - self.started


@flow(name="distilflow", log_prints=True)
def pipeline_flow(overrides: list[str] | None = None, temperature: float | None = None,
                  alpha_ce: float | None = None, alpha_mlm: float | None = None, alpha_cos: float | None = None,
                  n_layers: int | None = None, layers: Literal["every_other", "every_other_top", "spread"] | None = None,
                  hidden_size: int | None = None, max_steps: int | None = None, mlflow_run_id: str | None = None,
                  register_model: bool = True) -> dict:
    """One run of the pipeline. Empty, it runs params.yaml in the working tree. With any setting (the typed ones
    are what people sweep; `overrides` takes any `section.key=value`), it runs as a DVC experiment: params.yaml
    is left as it is, the values go into the experiment's dvc.lock and into MLflow. A sweep on a work pool gives
    each run its variant's MLflow run (`mlflow_run_id`) and registers only its winner (`register_model` false)."""
    clock = Stopwatch()
    overrides = typed_overrides(temperature, alpha_ce, alpha_mlm, alpha_cos, n_layers, layers, hidden_size,
                                max_steps) + (overrides or [])
    params = load_project_params(overrides)
    run_id = open_pipeline_run(params, mlflow_run_id)
    succeeded, experiment = False, None
    version, created, decision = None, False, Decision(False, "a sweep's variant: the sweep registers its winner")
    try:
        with clock("pin data"):
            pin_data(params, run_id)
            record_inputs(params, run_id)
        stages = {}  # name -> what DVC did with it
        if overrides:
            with clock("stages (DVC experiment)"):
                experiment, stages = reproduce_experiment(params, overrides, run_id)
        else:
            stage = reproduce_stage.with_options(retries=params.orchestration.stage_retries, retry_delay_seconds=10)
            for name in list_stages():
                with clock(name):
                    stages[name] = stage(params, name, run_id)
        with clock("register + promote"):
            log_headline_metrics(params, run_id, experiment)
            if register_model:
                version, created = register_student(params, run_id, experiment)
                decision = promote_by_rule(params, version)
        with clock("push to DVC remote"):
            push_data(params)
        report = publish_report(params, run_id, stages, version, created, decision, clock.seconds, clock.total(),
                                experiment)
        succeeded = True
    finally:
        close_pipeline_run(params, run_id, succeeded)
    return {"mlflow_run_id": run_id, "version": version, "registered_new": created, "experiment": experiment,
            "promoted": decision.promote, "reason": decision.reason, "stages": stages, "report": report,
            "seconds": clock.seconds, "total_seconds": clock.total()}


TYPED = {"temperature": "distill.loss.temperature", "alpha_ce": "distill.loss.alpha_ce",
         "alpha_mlm": "distill.loss.alpha_mlm", "alpha_cos": "distill.loss.alpha_cos", "n_layers": "student.n_layers",
         "layers": "student.layers", "hidden_size": "student.hidden_size", "max_steps": "distill.train.max_steps"}


def typed_overrides(temperature, alpha_ce, alpha_mlm, alpha_cos, n_layers, layers, hidden_size, max_steps) -> list[str]:
    """The deployment's typed parameters (a form in the Prefect UI) as overrides; None leaves params.yaml's value."""
    values = dict(zip(TYPED, (temperature, alpha_ce, alpha_mlm, alpha_cos, n_layers, layers, hidden_size, max_steps),
                      strict=True))
    return [f"{TYPED[name]}={value}" for name, value in values.items() if value is not None]


def run_pipeline(overrides: list[str] | None = None) -> dict:
    """The flow once, as `distilflow pipeline` and `make run` start it (temporary_server_settings)."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as startup

    with temporary_server_settings():
        try:
            return pipeline_flow(overrides=overrides or [])
        except RuntimeError as error:
            if "ephemeral Prefect API server" not in str(error):
                raise
            raise DistilflowError(
                f"{first_line(error)} (waited {startup.value()} s, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS): "
                "raise or unset that setting, or run a standing server (`prefect server start`, then PREFECT_API_URL)"
            ) from None


def temporary_server_settings():
    """Prefect's temporary server (a run without PREFECT_API_URL), as a run of its own needs it: time to
    start (TEMPORARY_SERVER_STARTUP_SECONDS), and no telemetry, whose first heartbeat on a new machine races
    the database being created ("database is locked", a 70-line traceback). A value the user set wins."""
    from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED as analytics
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as startup
    from prefect.settings import temporary_settings

    wanted = {startup: TEMPORARY_SERVER_STARTUP_SECONDS, analytics: False}
    # At its default: nobody set it (environment, profile or prefect.toml)
    return temporary_settings({setting: value for setting, value in wanted.items() if setting.value() == setting.default()})


def pipeline_deployment(orchestration: OrchestrationConfig, cron: str | None = None, work_pool: str | None = None,
                        overrides: list[str] | None = None):
    """The pipeline's one deployment: on `cron` (default orchestration.schedule), at most
    `orchestration.concurrency_limit` runs at a time (a run that finds the limit taken waits: a long
    distillation can outlast its period). Served by this process, or, with `work_pool`, by the
    workers of that pool, which run the flow in this project folder."""
    limit = ConcurrencyLimitConfig(limit=orchestration.concurrency_limit,
                                   collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    source = pipeline_flow if work_pool is None else pipeline_flow.from_source(str(PROJECT_ROOT), ENTRYPOINT)
    return source.to_deployment(name=orchestration.deployment, cron=checked_cron(cron or orchestration.schedule),
                                concurrency_limit=limit, work_pool_name=work_pool,
                                parameters={"overrides": overrides or []},
                                description="pin data -> dvc.yaml stages -> register -> promote (params.yaml)")


def checked_cron(expression: str) -> str:
    """A cron schedule Prefect accepts, checked without a server."""
    from prefect.client.schemas.schedules import CronSchedule

    five_fields = expression.startswith("@") or len(expression.split()) == 5  # croniter also takes seconds and years
    try:
        CronSchedule(cron=expression)
    except ValueError:  # pydantic's ValidationError
        five_fields = False
    if not five_fields:
        raise DistilflowError(f"invalid cron schedule {expression!r}: give five fields, e.g. \"0 3 * * 0\" "
                              "(Sundays 03:00)")
    return expression
