"""A sweep: variants of params.yaml, each run as its own DVC experiment, ranked on the held-out selection
slices of the GLUE training sets (never the dev sets), the best registered as challenger.

    distilflow sweep --grid distill.loss.temperature=1,2,4 --grid student.layers=every_other,every_other_top
    distilflow sweep params/headline-sweep.yaml --dry-run

A sweep file (YAML) holds the same as the options, and more: named variants, groups that each choose their
own winner (one per GLUE task, say), and a final phase that scores each group's winner on the dev sets over
seeds (the protocol of docs/results.md §12), with extra variants scored with that winner's recipe.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from distilflow.config.strict import StrictModel
from distilflow.errors import DistilflowError

Overrides = list[str]  # `section.key=value`, as `--set` and `dvc exp run -S` take them


class Selection(StrictModel):
    holdout: float = Field(0.1, gt=0, lt=1)  # glue.selection.holdout: the share of each training set held out
    per: list[str] = []  # keys whose value makes a group: each group chooses its own winner (e.g. glue.tasks)
    by: str = "student"  # whose selection GLUE score ranks: student, or teacher (a recipe for the teacher)
    # the recipes are given (chosen before, on held-out slices, by another sweep): one variant per group, none run
    # or ranked here; each is its group's winner, straight to the final phase (docs/results.md §16's frontier)
    given: bool = False


class FinalPhase(StrictModel):
    seeds: list[int] = Field(min_length=1)  # glue.seeds of the dev-set runs (holdout 0, full training sets)
    variants: dict[str, Overrides] = {}  # also scored with each group's winning recipe (ablations)


class SweepSpec(StrictModel):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$")
    params: str = "params.yaml"
    grid: dict[str, list[Any]] = {}  # key -> values: every combination is a variant
    variants: dict[str, Overrides] = {}  # name -> overrides; with a grid, each is run at every point of it
    select: Selection = Selection()
    final: FinalPhase | None = None
    register_winner: bool = True  # the winner becomes challenger, and champion if the promotion rule says so
    jobs: int = Field(1, ge=1)  # variants at a time (one machine: 1 on a CPU)
    # the last stage each variant runs: its GLUE report (enough to rank it), or its export too (ONNX sizes and CPU
    # latency of every variant, for a frontier of size and speed against retention)
    through: Literal["glue_report", "export"] = "glue_report"
    # a Prefect work pool: the variants become runs of the pipeline's deployment there (`distilflow deploy --pool`)
    pool: str | None = None

    @model_validator(mode="after")
    def _given_recipes_go_to_a_final_phase(self) -> SweepSpec:
        if self.select.given and self.final is None:
            raise ValueError("select.given runs nothing but a final phase: add final: (seeds:, variants:)")
        if self.select.given and self.register_winner:
            raise ValueError("select.given ranks nothing, so it has no winner to register: set register_winner: false")
        return self

    def planned(self) -> dict[str, Overrides]:
        """name -> overrides of every first-phase variant: each point of the grid's product with each named
        variant (a grid of tasks times a list of recipes, say); either alone when the other is empty."""
        keys = list(self.grid)
        points = {variant_name(dict(zip(keys, values))): [f"{k}={yaml_value(v)}" for k, v in zip(keys, values)]
                  for values in itertools.product(*self.grid.values())} if keys else {}
        if not points or not self.variants:
            return {**points, **self.variants}
        return {f"{point}_{name}": [*point_overrides, *overrides]
                for point, point_overrides in points.items() for name, overrides in self.variants.items()}

    def sweep_name(self) -> str:
        """--name, else a name from what the sweep varies: the same sweep given again is the same one (it resumes)."""
        if self.name:
            return self.name
        selection = self.select.model_dump(exclude=set() if self.select.given else {"given"})  # older sweeps' names
        digest = hashlib.sha256(json.dumps([self.planned(), selection, self.params],
                                           sort_keys=True).encode()).hexdigest()[:6]
        return f"sweep-{digest}"

    def group(self, overrides: Overrides) -> str:
        """The group a variant belongs to: its values of select.per (one group when none is set)."""
        values = dict(override.split("=", 1) for override in overrides)
        return ",".join(f"{key}={values.get(key, '')}" for key in self.select.per) or "all"


def variant_name(values: dict[str, Any]) -> str:
    """distill.loss.temperature=2, student.layers=every_other -> temperature-2_layers-every_other."""
    parts = [f"{key.rsplit('.', 1)[-1]}-{_slug(value)}" for key, value in values.items()]
    return "_".join(parts)[:60]


def _slug(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return "".join(c if c.isalnum() or c in ".-" else "" for c in text.replace(",", "-")) or "none"


def yaml_value(value: Any) -> str:
    """A value as an override writes it (`-S key=value`, `--set`): YAML's flow style."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def grid_from_options(options: list[str]) -> dict[str, list[Any]]:
    """`--grid key=v1,v2` -> {key: [v1, v2]}, each value read as YAML (numbers, null, lists in brackets)."""
    grid: dict[str, list[Any]] = {}
    for option in options:
        key, sep, values = option.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise DistilflowError(f"--grid '{option}' must look like section.key=value1,value2")
        grid[key.strip()] = [yaml.safe_load(value) for value in _split_values(values)]
    return grid


def _split_values(text: str) -> list[str]:
    """Commas split values, except inside brackets (a list value: glue.tasks=[rte],[mrpc])."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    return [value.strip() for value in [*values, current] if value.strip()]
