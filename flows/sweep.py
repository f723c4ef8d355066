"""A sweep as one Prefect flow: its variants fan out as tasks, `jobs` at a time (each a DVC experiment in its own
process), then the winners are chosen on the held-out selection slices, a final phase runs if the sweep file
asks for one, and the best is registered. `distilflow sweep` runs it; see distilflow/jobs/sweep.py."""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from distilflow.config.load import load_params
from distilflow.config.sweep import SweepSpec
from distilflow.steps.sweep_plan import SweepResult
from flows.pipeline import temporary_server_settings
from tasks import sweep as steps


@flow(name="distilflow-sweep", log_prints=True)
def sweep_flow(spec: SweepSpec) -> SweepResult:
    result = steps.start(spec)
    if not spec.select.given:  # given recipes go straight to the final phase
        _run(spec, result.variants)
    finals = steps.choose(spec, result)
    _run(spec, finals)
    return steps.finish(spec, result)


def _run(spec: SweepSpec, variants) -> None:
    """The variants not finished before, `jobs` at a time here, or each as a run of the deployment on the pool."""
    run = steps.run_on_pool if spec.pool else steps.run_variant
    for future in run.map(unmapped(spec), steps.still_to_run(spec, variants)):
        future.result()
    steps.collect(spec, variants)


def run_sweep(spec: SweepSpec) -> SweepResult:
    """The flow once, `spec.jobs` variants at a time, as `distilflow sweep` starts it; the sweep's folder is locked
    for its length (a second run of the same sweep waits or is refused)."""
    from distilflow.base.files import exclusive
    from distilflow.jobs.sweep import folder_of

    params = load_params(spec.params)
    runner = ThreadPoolTaskRunner(max_workers=len(spec.planned()) if spec.pool else spec.jobs)  # a pool: all at once
    with temporary_server_settings(), exclusive(folder_of(params, spec), params.orchestration.lock_wait_seconds):
        return sweep_flow.with_options(task_runner=runner)(spec)
