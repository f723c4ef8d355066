"""A sweep's plan: its variants, each one DVC experiment named after the sweep and the variant, in the phase it
belongs to (select: ranked on the held-out selection slices; final: each group's winner on the dev sets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from distilflow.config.load import DEFAULT_PARAMS_PATH, load_params
from distilflow.config.sweep import SweepSpec, yaml_value
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_results import GlueReport


@dataclass
class Variant:
    name: str
    overrides: list[str]
    group: str
    phase: str = "select"  # select: ranked on the held-out slices; final: the dev sets over seeds
    experiment: str = ""  # <sweep>-<name>
    status: str = "planned"  # planned, done, failed
    reason: str = ""
    report: GlueReport | None = None


@dataclass
class SweepResult:
    name: str
    variants: list[Variant]
    winners: dict[str, str] = field(default_factory=dict)  # group -> variant
    version: str | None = None
    decision: str = ""
    parent_run_id: str | None = None


HOLDOUT = "glue.selection.holdout="


def plan(spec: SweepSpec) -> list[Variant]:
    """The first phase's variants, each checked as a full params file would be (one line for a bad one)."""
    name = spec.sweep_name()
    holdout = f"{HOLDOUT}{spec.select.holdout}"
    base = params_file_overrides(spec.params)
    variants = []
    for variant, overrides in spec.planned().items():
        try:
            load_params(spec.params, [*overrides, holdout])
        except DistilflowError as error:
            raise DistilflowError(f"variant {variant}: {error}") from None
        variants.append(Variant(variant, [*base, *overrides, holdout], spec.group(overrides),
                                experiment=f"{name}-{variant}"))
    if not variants:
        raise DistilflowError("the sweep has no variants: give --grid key=v1,v2 (or a sweep file with grid: or variants:)")
    if spec.select.given:
        _require_one_per_group(variants)
    return variants


def params_file_overrides(params_file: str) -> list[str]:
    """A sweep of another params file (params/headline.yaml): its values where they differ from params.yaml's, as
    overrides. A DVC experiment runs dvc.yaml, which reads params.yaml: without them it would run params.yaml's
    values with the variant's changes only."""
    if Path(params_file).resolve() == DEFAULT_PARAMS_PATH.resolve():
        return []
    base, other = (_leaves(yaml.safe_load(Path(path).read_text()) or {}) for path in (DEFAULT_PARAMS_PATH, params_file))
    return [f"{key}={yaml_value(value)}" for key, value in other.items() if key not in base or base[key] != value]


def _leaves(tree: dict, prefix: str = "") -> dict:
    """section.key -> value for every leaf (a list is one value)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _require_one_per_group(variants: list[Variant]) -> None:
    """Given recipes: each group's one variant is its recipe (there is nothing to choose between)."""
    seen: dict[str, str] = {}
    for variant in variants:
        if variant.group in seen:
            raise DistilflowError(f"select.given: variants {seen[variant.group]} and {variant.name} are both in group "
                                  f"{variant.group}: give one recipe per group (select.per), or drop select.given")
        seen[variant.group] = variant.name
        variant.status = "given"


def final_plan(spec: SweepSpec, winners: dict[str, Variant]) -> list[Variant]:
    """Each group's winning recipe on the dev sets over final.seeds, and the final phase's extra variants with it."""
    if spec.final is None:
        return []
    seeds = f"glue.seeds={spec.final.seeds}".replace(" ", "")
    chosen = []
    for group, winner in winners.items():
        recipe = recipe_of(winner)
        extras = {f"{winner.name}-final": [], **{f"{extra}-{winner.name}": more
                                                for extra, more in spec.final.variants.items()}}
        for name, more in extras.items():
            chosen.append(Variant(name, [*recipe, *more, f"{HOLDOUT}0", seeds], group, "final",
                                  experiment=f"{spec.sweep_name()}-{name}"))
    return chosen


def recipe_of(variant: Variant) -> list[str]:
    """A first-phase variant's overrides without its held-out slice: what the final phase runs on the dev sets."""
    return without_holdout(variant.overrides)


def without_holdout(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.startswith(HOLDOUT)]


def describe_plan(spec: SweepSpec) -> str:
    """What a sweep will run (--dry-run): its variants, their experiments and settings, and its final phase."""
    variants = plan(spec)
    where = (f"each a run of the pipeline's deployment on work pool {spec.pool}" if spec.pool else
             f"{spec.jobs} at a time, each a DVC experiment up to its "
             + ("GLUE report" if spec.through == "glue_report" else "GLUE report and export"))
    base = params_file_overrides(spec.params)
    if spec.select.given:
        lines = [f"sweep {spec.sweep_name()} of {spec.params}: {len(variants)} recipes given (select.given: none run or "
                 f"ranked here), {where}"]
        lines += [f"  recipe {v.name}  {' '.join(without_holdout(v.overrides[len(base):]))}" for v in variants]
    else:
        lines = [f"sweep {spec.sweep_name()} of {spec.params}: {len(variants)} variants, {where}, ranked on the "
                 f"{spec.select.by}'s GLUE score on held-out slices ({spec.select.holdout:.0%}) of the training sets"
                 + (f", one winner per {', '.join(spec.select.per)}" if spec.select.per else "")]
        lines += [f"  {v.experiment}  [{v.group}]  {' '.join(v.overrides[len(base):])}" for v in variants]
    if base:
        lines.append(f"each with {spec.params}'s values where they differ from params.yaml: {' '.join(base)}")
    if spec.final is not None:
        groups = sorted({v.group for v in variants})
        chosen = f"{len(groups)} recipes" if spec.select.given else f"{len(groups)} groups' winners"
        lines.append(f"then, on the dev sets over seeds {spec.final.seeds} (full training sets), for each of the "
                     f"{chosen}: the {'recipe' if spec.select.given else 'winner'} itself"
                     + (f", and {', '.join(spec.final.variants)} with its recipe" if spec.final.variants else "")
                     + f": {len(groups) * (1 + len(spec.final.variants))} {'' if spec.select.given else 'more '}variants")
    lines.append("the best registered as challenger" if spec.register_winner else "nothing registered (register_winner: false, or --no-register)")
    return "\n".join(lines)
