"""A sweep's steps as Prefect tasks (distilflow/jobs/sweep.py does the work): open its runs, one task per variant
(each a DVC experiment in its own process; on a work pool, a run of the pipeline's deployment there), collect,
choose, register and report."""

from __future__ import annotations

import json
import logging
import time

from prefect import get_run_logger, task
from prefect.deployments import run_deployment

from distilflow.config.load import load_params
from distilflow.config.sweep import SweepSpec
from distilflow.errors import DistilflowError
from distilflow.jobs import sweep
from distilflow.ops.sweep_report import summary
from distilflow.ops.tracking import Tracking
from distilflow.steps.sweep_plan import SweepResult, Variant

FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")  # of a flow run on the pool
POLL_SECONDS = 10.0  # how often a variant's flow run on the pool is asked for its state (a variant takes minutes)
logger = logging.getLogger("distilflow.sweep")


@task(name="open sweep")
def start(spec: SweepSpec) -> SweepResult:
    result = sweep.start(spec)
    get_run_logger().info("sweep %s: %d variants (MLflow run %s)", result.name, len(result.variants),
                          result.parent_run_id)
    return result


@task(name="variants still to run")
def still_to_run(spec: SweepSpec, variants: list[Variant]) -> list[Variant]:
    return sweep.still_to_run(spec, variants)


@task(name="variant", task_run_name="{variant.name}")
def run_variant(spec: SweepSpec, variant: Variant) -> Variant:
    return sweep.run_variant(spec, variant)


@task(name="collect results")
def collect(spec: SweepSpec, variants: list[Variant]) -> list[Variant]:
    sweep.collect(spec, variants)
    return variants


@task(name="choose winners")
def choose(spec: SweepSpec, result: SweepResult) -> list[Variant]:
    finals = sweep.choose(spec, result)
    get_run_logger().info("winners: %s", result.winners)
    return finals


@task(name="register and report")
def finish(spec: SweepSpec, result: SweepResult) -> SweepResult:
    result = sweep.finish(spec, result)
    get_run_logger().info(summary(result))
    return result


@task(name="variant on the work pool", task_run_name="{variant.name} on {spec.pool}")
def run_on_pool(spec: SweepSpec, variant: Variant) -> Variant:
    """The variant as a run of the pipeline's deployment on `spec.pool`, logging into the variant's MLflow run and
    registering nothing (the sweep registers its winner); waits for it. A run submitted before and still going
    (a resumed sweep) is waited for, not submitted again."""
    params = load_params(spec.params)
    deployment = f"distilflow/{params.orchestration.deployment}"
    submitted = sweep.folder_of(params, spec) / "pool_runs.json"
    runs = json.loads(submitted.read_text()) if submitted.is_file() else {}
    flow_run = _flow_run(runs.get(variant.name))
    if flow_run is None or flow_run.state_type.value in FINAL_STATES:
        with Tracking(params.tracking) as tracking:
            run_id = tracking.experiment_run(variant.experiment)
        try:
            flow_run = run_deployment(deployment, parameters={"overrides": variant.overrides, "mlflow_run_id": run_id,
                                                              "register_model": False},
                                      flow_run_name=variant.experiment, timeout=0, as_subflow=False)
        except Exception as error:  # Prefect's ObjectNotFound: no such deployment
            raise DistilflowError(f"deployment {deployment} not found ({error}): `distilflow deploy --pool "
                                  f"{spec.pool}` makes it, then run the sweep again") from None
        runs[variant.name] = str(flow_run.id)
        submitted.write_text(json.dumps(runs, indent=2))
    logger.info("%s: flow run %s of %s on work pool %s", variant.name, flow_run.name, deployment, spec.pool)
    while flow_run.state_type.value not in FINAL_STATES:
        time.sleep(POLL_SECONDS)
        flow_run = _flow_run(str(flow_run.id))
    if flow_run.state_type.value != "COMPLETED":
        variant.status, variant.reason = "failed", f"flow run {flow_run.name}: {flow_run.state.message or flow_run.state_name}"
    return variant


def _flow_run(flow_run_id: str | None):
    from prefect.client.orchestration import get_client

    if flow_run_id is None:
        return None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)
