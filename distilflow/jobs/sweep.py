"""`distilflow sweep`: many students from one command. Each variant of params.yaml is one DVC experiment (its
own temporary copy of the project; the stages it does not change restored from DVC's run-cache), its stages
logged under one MLflow run per variant, those under the sweep's parent run. Variants are ranked on the
held-out selection slices of the GLUE training sets (glue.selection), never the dev sets, which are reported;
the winner is registered as challenger, and made champion when the promotion rule says so. params.yaml and the
working tree are left as they are. A sweep given again is the same sweep: it resumes, never rerunning a
finished variant. config/sweep.py says what a sweep file holds. On a work pool (`--pool`), the variants are runs
of the pipeline's deployment on other machines: their reports and students are read from the shared MLflow store
(ops/variant_runs.py). flows/sweep.py runs these steps as one Prefect flow.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distilflow.config import Params
from distilflow.config.load import load_params
from distilflow.config.sweep import SweepSpec
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_results import GlueReport
from distilflow.ops import dvc, experiments, run_summary, task_pins, variant_runs
from distilflow.ops.sweep_report import SWEEP_TAG, describe, ranking_metric, table
from distilflow.ops.tracking import Tracking
from distilflow.steps.registration import register
from distilflow.steps.run_outputs import RunOutputs
from distilflow.steps.sweep_plan import SweepResult, Variant, final_plan, plan

logger = logging.getLogger(__name__)


def pinned_files(params: Params) -> list[Path]:
    """The .dvc files of what the stages read: the pipeline's inputs and each task's (ops/task_pins.py)."""
    tasks = [source for name, config in params.tasks.items() for source in task_pins.task_sources(name, config).values()]
    return [Path(f"{source.path}.dvc") for source in [*params.versioning.sources.values(), *tasks]]


def folder_of(params: Params, spec: SweepSpec):
    folder = params.paths.sweeps / spec.sweep_name()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start(spec: SweepSpec) -> SweepResult:
    """The plan, and the sweep's MLflow parent run with a child run per variant (the same ones when it resumes)."""
    variants = check(spec)
    params = load_params(spec.params)
    with Tracking(params.tracking) as tracking:
        result = SweepResult(spec.sweep_name(), variants, parent_run_id=_open(tracking, spec))
        _open_variants(tracking, result, [v for v in variants if v.status != "given"])  # a given recipe never runs
    return result


def check(spec: SweepSpec) -> list[Variant]:
    """The plan, each variant checked, and what the sweep needs before any work: the pins committed (a DVC
    experiment starts from the last commit), or on a pool a store every worker reaches."""
    variants = plan(spec)
    params = load_params(spec.params)
    if spec.pool:
        require_shared_store(params)
    else:
        experiments.require_committed(pinned_files(params))
    return variants


def require_shared_store(params: Params) -> None:
    """Variants on other machines log into one store they all reach: a tracking server, not a local file."""
    from distilflow.ops.mlflow_store import tracking_uri

    if not tracking_uri(params.tracking).startswith(("http://", "https://", "databricks")):
        raise DistilflowError(f"a sweep on a work pool needs a tracking server every worker reaches, not "
                              f"{tracking_uri(params.tracking)}: set tracking.tracking_uri (or MLFLOW_TRACKING_URI) "
                              "to its http:// address (docs/how-to.md, a team's tracking server)")


def _open_variants(tracking: Tracking, result: SweepResult, variants: list[Variant]) -> None:
    for variant in variants:
        tracking.experiment_run(variant.experiment, parent=result.parent_run_id,
                                tags={SWEEP_TAG: result.name, "variant": variant.name, "phase": variant.phase})


def still_to_run(spec: SweepSpec, variants: list[Variant]) -> list[Variant]:
    """The variants not finished yet: a finished one (its experiment, or on a pool its report) is never rerun."""
    if spec.pool:
        with Tracking(load_params(spec.params).tracking) as tracking:
            done = {v.experiment for v in variants
                    if variant_runs.read_report(tracking, tracking.experiment_run(v.experiment)) is not None}
    else:
        done = experiments.finished()
    for variant in (v for v in variants if v.experiment in done):
        logger.info("%s: finished before (DVC experiment %s): not run again", variant.name, variant.experiment)
    return [v for v in variants if v.experiment not in done]


def run_variant(spec: SweepSpec, variant: Variant) -> Variant:
    """One variant as its own DVC experiment, up to its GLUE report."""
    outcome = _run_one(variant, folder_of(load_params(spec.params), spec), spec.through)
    if not outcome.ok:
        variant.status, variant.reason = "failed", outcome.error
        logger.warning("%s failed: %s (log: %s)", variant.name, outcome.error, outcome.log_file)
    return variant


def collect(spec: SweepSpec, variants: list[Variant]) -> None:
    """Each finished variant's GLUE report, out of its experiment, onto its MLflow run."""
    with Tracking(load_params(spec.params).tracking) as tracking:
        for variant in variants:
            report = _report(spec, tracking, variant)
            if variant.status == "failed" or report is None:
                variant.status, variant.reason = "failed", variant.reason or "no GLUE report"
                if tracking.enabled:  # its run says so in the runs table
                    run_id = tracking.experiment_run(variant.experiment)
                    tracking.log_to_run(run_id, {}, tags={"failure": variant.reason})
                    tracking.client().set_terminated(run_id, "FAILED")
                continue
            variant.status, variant.report = "done", report
            _record(tracking, variant)


def _report(spec: SweepSpec, tracking: Tracking, variant: Variant) -> GlueReport | None:
    """A variant's GLUE report: out of its DVC experiment, or (on a pool) off its run in the shared store."""
    if spec.pool:
        return variant_runs.read_report(tracking, tracking.experiment_run(variant.experiment))
    report = experiments.read_json(variant.experiment, "metrics/glue.json")
    return GlueReport.model_validate(report) if report else None


def choose(spec: SweepSpec, result: SweepResult) -> list[Variant]:
    """Each group's winner of the first phase, and the final phase it asks for (opened in MLflow, not run yet)."""
    if spec.select.given:
        winners = {v.group: v for v in result.variants if v.phase == "select"}  # one per group (plan checked)
    else:
        winners = rank(spec, [v for v in result.variants if v.status == "done"])
    result.winners = {group: winner.name for group, winner in winners.items()}
    finals = final_plan(spec, winners)
    result.variants += finals
    with Tracking(load_params(spec.params).tracking) as tracking:
        _open_variants(tracking, result, finals)
    return finals


def finish(spec: SweepSpec, result: SweepResult) -> SweepResult:
    """The winner registered (challenger; champion if the rule says so), the report on the parent run."""
    params = load_params(spec.params)
    by_name = {v.name: v for v in result.variants}
    best = _best(spec, {group: by_name[name] for group, name in result.winners.items()}) if spec.register_winner \
        else None
    with Tracking(params.tracking) as tracking:
        if best is not None:
            result.version, result.decision = _register(params, tracking, best, spec)
        _close(tracking, spec, result, folder_of(params, spec))
    return result


def _open(tracking: Tracking, spec: SweepSpec) -> str | None:
    """The sweep's parent run (the same one when a sweep resumes)."""
    if not tracking.enabled:
        return None
    client = tracking.client()
    found = client.search_runs([tracking.experiment_id], f"tags.{SWEEP_TAG} = '{spec.sweep_name()}' and "
                               "tags.stage = 'sweep'", max_results=1)
    if found:
        return found[0].info.run_id
    return tracking.start_parent_run(f"sweep {spec.sweep_name()}", {"stage": "sweep", SWEEP_TAG: spec.sweep_name()},
                                     {"sweep": spec.model_dump(mode="json")})


def _run_one(variant: Variant, folder, through: str) -> experiments.Outcome:
    """The variant's stages up to `through` (spec.through): by default its GLUE report, the export being for what
    gets deployed."""
    logger.info("%s: DVC experiment %s (%s)", variant.name, variant.experiment, ", ".join(variant.overrides))
    return experiments.run(variant.experiment, variant.overrides, folder / "logs" / f"{variant.name}.log",
                           targets=[through])


def _record(tracking: Tracking, variant: Variant) -> None:
    """The variant's GLUE figures on its MLflow run, as the pipeline's runs carry them (the compare view)."""
    if not tracking.enabled:
        return
    run_id = tracking.experiment_run(variant.experiment)
    metrics = run_summary.headline_metrics(variant.report, {})
    # the settings it changes as params: the compare view's columns and parallel-coordinates axes (a pipeline run
    # on a pool logged them all already, in its own spelling)
    logged = tracking.client().get_run(run_id).data.params
    tracking.log_to_run(run_id, metrics, tags={"overrides": " ".join(variant.overrides)},
                        params={key: value for key, value in (o.split("=", 1) for o in variant.overrides)
                                if key not in logged})
    tracking.client().set_terminated(run_id, "FINISHED")


def rank(spec: SweepSpec, variants: list[Variant]) -> dict[str, Variant]:
    """Each group's best variant of the first phase, on its selection GLUE score (never a dev score)."""
    winners: dict[str, Variant] = {}
    for variant in (v for v in variants if v.phase == "select"):
        score = ranking_metric(variant.report, spec.select.by)
        if score is None:
            raise DistilflowError(f"variant {variant.name} has no selection GLUE score: its GLUE stages ran without "
                                  "glue.selection.holdout")
        best = winners.get(variant.group)
        if best is None or score > ranking_metric(best.report, spec.select.by):
            winners[variant.group] = variant
    return winners


def _best(spec: SweepSpec, winners: dict[str, Variant]) -> Variant | None:
    return max(winners.values(), key=lambda v: ranking_metric(v.report, spec.select.by), default=None)


def _register(params: Params, tracking: Tracking, best: Variant, spec: SweepSpec) -> tuple[str, str]:
    """The winner's student, out of the DVC cache (on a pool: its LoggedModel in the shared store), registered as
    challenger; champion if the rule says so."""
    from distilflow.ops import registry

    run_id = tracking.experiment_run(best.experiment)
    data_versions = dvc.source_hashes(params.versioning)
    if spec.pool:
        student = variant_runs.download_student(tracking, run_id, params.paths.sweeps / best.experiment)
    else:
        outputs = RunOutputs(params, best.experiment)
        data_versions |= {f"{k}_artifact": v for k, v in outputs.output_hashes().items()}
        student = outputs.folder(params.paths.student)
    version, _ = register(params, tracking, student, best.report, run_id, data_versions)
    decision = registry.promote_by_policy(params.registry, version)
    return version, decision.reason


def _close(tracking: Tracking, spec: SweepSpec, result: SweepResult, folder) -> None:
    """The table of variants and the decision on the parent run, and in the sweep's folder."""
    markdown = describe(result, spec, tracking.run_url(result.parent_run_id) if result.parent_run_id else "")
    (folder / "report.md").write_text(markdown)
    (folder / "variants.csv").write_text(table(result.variants, csv=True))
    if tracking.enabled:
        tracking.log_to_run(result.parent_run_id, {}, tags={"mlflow.note.content": markdown})
        tracking.client().log_artifact(result.parent_run_id, str(folder / "variants.csv"))
        tracking.client().log_artifact(result.parent_run_id, str(folder / "report.md"))
        failed = any(v.status == "failed" for v in result.variants)
        tracking.end_parent_run(result.parent_run_id, succeeded=not failed)


def collect_garbage(result: SweepResult) -> str:
    """The losers' experiments and the outputs only they used; their MLflow runs and metrics stay."""
    winners = set(result.winners.values())
    experiments.remove([v.experiment for v in result.variants if v.phase == "select" and v.name not in winners
                        and v.experiment in experiments.finished()])
    return experiments.collect_garbage()
