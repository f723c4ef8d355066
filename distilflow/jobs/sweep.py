"""`distilflow sweep`: many students from one command. Each variant of params.yaml is one DVC experiment (its
own temporary copy of the project; the stages it does not change restored from DVC's run-cache), its stages
logged under one MLflow run per variant, those under the sweep's parent run. Variants are ranked on the
held-out selection slices of the GLUE training sets (glue.selection), never the dev sets, which are reported;
the winner is registered as challenger, and made champion when the promotion rule says so. params.yaml and the
working tree are left as they are. A sweep given again is the same sweep: it resumes, never rerunning a
finished variant. config/sweep.py says what a sweep file holds.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from distilflow.base.files import exclusive
from distilflow.config import Params
from distilflow.config.load import load_params
from distilflow.config.sweep import SweepSpec
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_results import GlueReport
from distilflow.ops import dvc, experiments, run_summary
from distilflow.ops.sweep_report import SWEEP_TAG, describe, ranking_metric, table
from distilflow.ops.tracking import Tracking
from distilflow.steps.registration import register
from distilflow.steps.run_outputs import RunOutputs
from distilflow.steps.sweep_plan import SweepResult, Variant, final_plan, plan

logger = logging.getLogger(__name__)
STAGES = "glue_report"  # a variant runs up to its GLUE report: the export is for what gets deployed


def run(spec: SweepSpec) -> SweepResult:
    """The whole sweep in this process (flows/sweep.py runs the same steps as Prefect tasks)."""
    params = load_params(spec.params)
    with exclusive(folder_of(params, spec), params.orchestration.lock_wait_seconds):
        result = start(spec)
        run_variants(spec, result.variants)
        collect(spec, result.variants)
        finals = choose(spec, result)
        run_variants(spec, finals)
        collect(spec, finals)
        return finish(spec, result)


def pinned_files(params: Params) -> list:
    from pathlib import Path

    return [Path(f"{source.path}.dvc") for source in params.versioning.sources.values()]


def folder_of(params: Params, spec: SweepSpec):
    folder = params.paths.sweeps / spec.sweep_name()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start(spec: SweepSpec) -> SweepResult:
    """The plan, and the sweep's MLflow parent run with a child run per variant (the same ones when it resumes)."""
    variants = plan(spec)
    params = load_params(spec.params)
    experiments.require_committed(pinned_files(params))
    with Tracking(params.tracking) as tracking:
        result = SweepResult(spec.sweep_name(), variants, parent_run_id=_open(tracking, spec))
        _open_variants(tracking, result, variants)
    return result


def _open_variants(tracking: Tracking, result: SweepResult, variants: list[Variant]) -> None:
    for variant in variants:
        tracking.experiment_run(variant.experiment, parent=result.parent_run_id,
                                tags={SWEEP_TAG: result.name, "variant": variant.name, "phase": variant.phase})


def run_variants(spec: SweepSpec, variants: list[Variant]) -> None:
    """The variants not finished yet, `spec.jobs` at a time; a failing one is reported and the others go on."""
    done = experiments.finished()
    todo = [v for v in variants if v.experiment not in done]
    for variant in variants:
        if variant.experiment in done:
            logger.info("%s: finished before (DVC experiment %s): not run again", variant.name, variant.experiment)
    with ThreadPoolExecutor(max_workers=spec.jobs) as pool:
        list(pool.map(lambda variant: run_variant(spec, variant), todo))


def run_variant(spec: SweepSpec, variant: Variant) -> Variant:
    """One variant as its own DVC experiment, up to its GLUE report."""
    outcome = _run_one(variant, folder_of(load_params(spec.params), spec))
    if not outcome.ok:
        variant.status, variant.reason = "failed", outcome.error
        logger.warning("%s failed: %s (log: %s)", variant.name, outcome.error, outcome.log_file)
    return variant


def collect(spec: SweepSpec, variants: list[Variant]) -> None:
    """Each finished variant's GLUE report, out of its experiment, onto its MLflow run."""
    with Tracking(load_params(spec.params).tracking) as tracking:
        for variant in variants:
            report = experiments.read_json(variant.experiment, "metrics/glue.json")
            if variant.status == "failed" or not report:
                variant.status = "failed"
                continue
            variant.status, variant.report = "done", GlueReport.model_validate(report)
            _record(tracking, variant)


def choose(spec: SweepSpec, result: SweepResult) -> list[Variant]:
    """Each group's winner of the first phase, and the final phase it asks for (opened in MLflow, not run yet)."""
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
    best = _best(spec, {group: by_name[name] for group, name in result.winners.items()})
    with Tracking(params.tracking) as tracking:
        if spec.register_winner and best is not None:
            result.version, result.decision = _register(params, tracking, best)
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


def _run_one(variant: Variant, folder) -> experiments.Outcome:
    logger.info("%s: DVC experiment %s (%s)", variant.name, variant.experiment, ", ".join(variant.overrides))
    return experiments.run(variant.experiment, variant.overrides, folder / "logs" / f"{variant.name}.log",
                           targets=[STAGES])


def _record(tracking: Tracking, variant: Variant) -> None:
    """The variant's GLUE figures on its MLflow run, as the pipeline's runs carry them (the compare view)."""
    if not tracking.enabled:
        return
    run_id = tracking.experiment_run(variant.experiment)
    metrics = run_summary.headline_metrics(variant.report, {})
    # the settings it changes as params: the compare view's columns and parallel-coordinates axes
    tracking.log_to_run(run_id, metrics, tags={"overrides": " ".join(variant.overrides)},
                        params=dict(override.split("=", 1) for override in variant.overrides))
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


def _register(params: Params, tracking: Tracking, best: Variant) -> tuple[str, str]:
    """The winner's student, out of the DVC cache, registered as challenger; champion if the rule says so."""
    from distilflow.ops import registry

    outputs = RunOutputs(params, best.experiment)
    data_versions = {**dvc.source_hashes(params.versioning),
                     **{f"{k}_artifact": v for k, v in outputs.output_hashes().items()}}
    version, _ = register(params, tracking, outputs.folder(params.paths.student), best.report,
                          tracking.experiment_run(best.experiment), data_versions)
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


def summary(result: SweepResult) -> str:
    done = [v for v in result.variants if v.status == "done"]
    failed = [f"{v.name} ({v.reason})" for v in result.variants if v.status == "failed"]
    lines = [f"sweep {result.name}: {len(done)} of {len(result.variants)} variants done"
             + (f"; failed: {'; '.join(failed)}" if failed else "")]
    lines += [f"winner{'' if group == 'all' else f' of {group}'}: {name}" for group, name in result.winners.items()]
    if result.version:
        lines.append(f"registered version {result.version} (challenger); promotion: {result.decision}")
    return "\n".join(lines)


def collect_garbage(result: SweepResult) -> str:
    """The losers' experiments and the outputs only they used; their MLflow runs and metrics stay."""
    winners = set(result.winners.values())
    experiments.remove([v.experiment for v in result.variants if v.phase == "select" and v.name not in winners
                        and v.experiment in experiments.finished()])
    return experiments.collect_garbage()
