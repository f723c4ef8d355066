"""The pipeline as one Prefect flow: pin data -> the stages of dvc.yaml -> register -> promote.

The steps between pinning and registering are whatever dvc.yaml defines (prepare, teacher, distill,
one GLUE stage per task, the report), in dependency order, each in its own process, each skipped
when nothing it depends on changed. Run it from the project root:

    distilflow pipeline                      # once
    distilflow serve                         # on orchestration.schedule, one run at a time
    distilflow deploy --pool distilflow      # the same deployment, run by a work pool's workers
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from distilflow.config import OrchestrationConfig
from distilflow.errors import DistilflowError
from tasks.data import pin_data, push_data
from tasks.registry import promote_by_rule, register_student
from tasks.stages import list_stages, reproduce_stage
from tasks.tracking import (
    close_pipeline_run,
    load_project_params,
    log_headline_metrics,
    open_pipeline_run,
    publish_report,
    record_inputs,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = "flows/pipeline.py:pipeline_flow"


@flow(name="distilflow", log_prints=True)
def pipeline_flow(overrides: list[str] | None = None) -> dict:
    """overrides: `section.key=value` settings (e.g. `distill.loss.temperature=3`), written into
    params.yaml before the stages run, exactly like `dvc exp run -S`; empty runs params.yaml as it is."""
    params = load_project_params(overrides or [])
    run_id = open_pipeline_run(params)
    succeeded = False
    try:
        pin_data(params, run_id)
        record_inputs(params, run_id)
        stage = reproduce_stage.with_options(retries=params.orchestration.stage_retries, retry_delay_seconds=10)
        stages_ran = {name: stage(params, name, run_id) for name in list_stages()}
        log_headline_metrics(params, run_id)
        version, created = register_student(params, run_id)
        decision = promote_by_rule(params, version)
        report = publish_report(params, run_id, stages_ran, version, created, decision)
        push_data(params)
        succeeded = True
    finally:
        close_pipeline_run(params, run_id, succeeded)
    return {"mlflow_run_id": run_id, "version": version, "registered_new": created,
            "promoted": decision.promote, "reason": decision.reason, "stages_ran": stages_ran, "report": report}


def pipeline_deployment(orchestration: OrchestrationConfig, cron: str | None = None, work_pool: str | None = None,
                        overrides: list[str] | None = None):
    """The pipeline's one deployment: on `cron` (default orchestration.schedule), at most
    `orchestration.concurrency_limit` runs at a time (a run that finds the limit taken waits: a long
    distillation can outlast its period). Served by this process, or, with `work_pool`, by the
    workers of that pool, which run the flow in this project folder."""
    limit = ConcurrencyLimitConfig(limit=orchestration.concurrency_limit,
                                   collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    source = pipeline_flow if work_pool is None else pipeline_flow.from_source(str(PROJECT_ROOT), ENTRYPOINT)
    try:
        return source.to_deployment(name=orchestration.deployment, cron=cron or orchestration.schedule,
                                    concurrency_limit=limit, work_pool_name=work_pool,
                                    parameters={"overrides": overrides or []},
                                    description="pin data -> dvc.yaml stages -> register -> promote (params.yaml)")
    except ValueError as error:  # pydantic's ValidationError: an invalid cron expression
        raise DistilflowError(f"invalid cron schedule {cron or orchestration.schedule!r}: give five fields, "
                              "e.g. \"0 3 * * 0\" (Sundays 03:00)") from error
