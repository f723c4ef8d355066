"""`distilflow sweep`: many students from one command (jobs/sweep.py), as the Prefect flow flows/sweep.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from distilflow.cli.app import app
from distilflow.config.load import DEFAULT_PARAMS_PATH
from distilflow.errors import DistilflowError

PANEL = "Pipeline and registry"


@app.command(rich_help_panel=PANEL)
def sweep(spec_file: Annotated[Optional[Path], typer.Argument(help="a sweep file (YAML): grid, variants, phases")] = None,
          grid: Annotated[Optional[list[str]], typer.Option(
              "--grid", "-g", help="key=value1,value2 (repeat for a product), e.g. distill.loss.temperature=1,2,4")] = None,
          name: Annotated[Optional[str], typer.Option(help="the sweep's name (default: from what it varies)")] = None,
          jobs: Annotated[Optional[int], typer.Option(help="variants at a time (default 1)")] = None,
          pool: Annotated[Optional[str], typer.Option(
              help="a Prefect work pool: each variant a run of the pipeline's deployment there (distilflow deploy)")] = None,
          holdout: Annotated[Optional[float], typer.Option(help="share of each GLUE training set to rank on")] = None,
          no_register: Annotated[bool, typer.Option("--no-register", help="rank, but register nothing")] = False,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, run nothing")] = False,
          gc: Annotated[bool, typer.Option("--gc", help="after it: drop the losers' experiments and outputs")] = False,
          params: Annotated[Path, typer.Option("--params", "-p", help="params file")] = DEFAULT_PARAMS_PATH) -> None:
    """Run variants of params.yaml as DVC experiments; register the best, chosen on held-out slices of GLUE."""
    from distilflow.jobs import sweep as job
    from distilflow.ops.sweep_report import summary

    spec = build_spec(spec_file, grid or [], name, jobs, holdout, no_register, params, pool)
    if dry_run:
        from distilflow.steps.sweep_plan import describe_plan

        typer.echo(describe_plan(spec))
        return
    from flows.sweep import run_sweep

    job.check(spec)  # bad input is one line before Prefect starts
    result = run_sweep(spec)
    typer.echo(summary(result))
    if gc:
        typer.echo(job.collect_garbage(result))
    if any(variant.status == "failed" for variant in result.variants):
        raise typer.Exit(1)  # the others went on; a scheduler still sees that the sweep is not complete


def build_spec(spec_file: Path | None, grid: list[str], name: str | None, jobs: int | None, holdout: float | None,
               no_register: bool, params: Path, pool: str | None = None):
    """The sweep file, then the options over it: one line for anything wrong with either."""
    import yaml
    from pydantic import ValidationError

    from distilflow.config.load import describe_validation_error
    from distilflow.config.sweep import SweepSpec, grid_from_options

    raw: dict = {}
    if spec_file is not None:
        if not spec_file.is_file():
            raise DistilflowError(f"sweep file '{spec_file}' not found: give the path of a YAML sweep file")
        try:
            raw = yaml.safe_load(spec_file.read_text()) or {}
        except yaml.YAMLError as error:
            raise DistilflowError(f"sweep file '{spec_file}' is not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise DistilflowError(f"sweep file '{spec_file}' must be a mapping (name:, grid:, variants:, select:, "
                                  "final:), see params/headline-sweep.yaml")
    else:
        raw["params"] = str(params)
    raw.setdefault("grid", {}).update(grid_from_options(grid))
    raw.update({key: value for key, value in (("name", name), ("jobs", jobs), ("pool", pool)) if value is not None})
    if holdout is not None:
        raw.setdefault("select", {})["holdout"] = holdout
    if no_register:
        raw["register_winner"] = False
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as error:
        raise DistilflowError(describe_validation_error(error, f"sweep {spec_file or '--grid'}")) from None
