"""The pipeline as one Prefect flow: pin data -> the stages of dvc.yaml -> register -> promote.

The steps between pinning and registering are whatever dvc.yaml defines (prepare, teacher, distill,
one GLUE stage per task, the report), in dependency order, each in its own process, each skipped
when nothing it depends on changed. Run it from the project root:

    distilflow pipeline                      # once
    distilflow serve --cron "0 3 * * 0"      # on a schedule, one run at a time
"""

from __future__ import annotations

from prefect import flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from distilflow.config import OrchestrationConfig
from distilflow.errors import DistilflowError
from tasks.pipeline import (
    close_pipeline_run,
    list_stages,
    load_project_params,
    open_pipeline_run,
    pin_data,
    promote_by_policy,
    publish_report,
    push_data,
    register_student,
    reproduce_stage,
)


@flow(name="distilflow", log_prints=True)
def pipeline_flow() -> dict:
    params = load_project_params()
    run_id = open_pipeline_run(params)
    succeeded = False
    try:
        data_hashes = pin_data(params, run_id)
        stage = reproduce_stage.with_options(retries=params.orchestration.stage_retries, retry_delay_seconds=10)
        stages_ran = {name: stage(params, name, run_id) for name in list_stages()}
        version, created = register_student(params, run_id, data_hashes)
        decision = promote_by_policy(params, version)
        report = publish_report(params, run_id, stages_ran, version, created, decision)
        push_data(params)
        succeeded = True
    finally:
        close_pipeline_run(params, run_id, succeeded)
    return {"mlflow_run_id": run_id, "version": version, "registered_new": created,
            "promoted": decision.promote, "reason": decision.reason, "stages_ran": stages_ran, "report": report}


def scheduled_deployment(cron: str, orchestration: OrchestrationConfig):
    """The flow as a deployment on `cron`, at most `orchestration.concurrency_limit` runs at a time:
    a run that finds the limit taken is enqueued and waits (a long distillation can outlast its period)."""
    limit = ConcurrencyLimitConfig(limit=orchestration.concurrency_limit,
                                   collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    try:
        return pipeline_flow.to_deployment(name=orchestration.deployment, cron=cron, concurrency_limit=limit)
    except ValueError as error:  # pydantic's ValidationError: an invalid cron expression
        raise DistilflowError(f"invalid cron schedule {cron!r}: give five fields, e.g. \"0 3 * * 0\" "
                              f"(Sundays 03:00)") from error
