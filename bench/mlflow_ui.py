"""The MLflow UI as a user sees it, checked in a real headless browser, with screenshots for the docs.

    python bench/mlflow_ui.py [--store sqlite:///mlruns/mlflow.db] [--out docs/images]

Starts `mlflow ui` on 127.0.0.1, opens the experiment's runs table in Chromium (Debian's package:
`apt-get install chromium`; Playwright drives it, as Playwright cannot download its own browsers
offline: `pip install playwright==1.58.0`), shows the two latest pipeline runs with their GLUE score,
retention, latency and speed-up as columns, and checks that each run's values are on screen. Then
the compare view of the two runs and the champion's registered version (its model card). Exits 1
with the reason when something is missing. Needs two pipeline runs (two `make run`s).

    python bench/mlflow_ui.py --sweep NAME   # a sweep's variants in the compare view (distilflow sweep --name NAME)

opens the compare view of the sweep's finished child runs (its parallel-coordinates plot of the params the variants
change against their selection GLUE score) and checks that each variant's value of them is on screen. With
`--with-runs`, the runs table, compare view and model card above too, from the same server and browser.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import mlflow

from distilflow.ops.local_server import TRACKING_SERVER_ENV, free_port, local_server

COLUMNS = ["student_glue_score", "glue_retention", "student_latency_ms_cpu_b1", "speedup_cpu_b1",
           "student_test_mlm_loss"]
CHECKED = ["student_glue_score", "glue_retention"]  # values that must be on screen for both runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--experiment", default="distilflow")
    parser.add_argument("--model", default="distilflow-student")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--sweep", help="show this sweep's variants in the compare view instead")
    parser.add_argument("--with-runs", action="store_true", help="with --sweep: the pipeline runs' views too")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: no Chromium: apt-get install chromium", file=sys.stderr)
        return 1
    mlflow.set_tracking_uri(args.store)
    experiment = mlflow.get_experiment_by_name(args.experiment)
    checks = []  # each takes the browser's page and the server's url, and returns its problems
    if not args.sweep or args.with_runs:
        runs = mlflow.search_runs([experiment.experiment_id], "tags.stage = 'pipeline' and attributes.status = "
                                  "'FINISHED'", order_by=["attributes.start_time DESC"], max_results=50,
                                  output_format="list")
        runs = [run for run in runs if "mlflow.parentRunId" not in run.data.tags][:2]  # a sweep's variants: nested
        if len(runs) < 2:
            print(f"error: {len(runs)} finished pipeline run(s) in {args.store}: run `make run` twice", file=sys.stderr)
            return 1
        version = mlflow.MlflowClient().get_model_version_by_alias(args.model, "champion").version
        checks.append(lambda page, url: _check_runs(page, url, experiment.experiment_id, runs, args.model, version,
                                                    args.out))
    if args.sweep:
        variants = _sweep_variants(experiment.experiment_id, args.sweep)
        if len(variants) < 2:
            print(f"error: sweep {args.sweep} has {len(variants)} finished variant run(s) in {args.store}: run "
                  f"`distilflow sweep --name {args.sweep} --grid KEY=V1,V2` first", file=sys.stderr)
            return 1
        checks.append(lambda page, url: _compare_variants(page, url, experiment.experiment_id, variants, args.out))
    args.out.mkdir(parents=True, exist_ok=True)
    return _in_browser(browser, args.store, checks)


def _in_browser(browser: str, store: str, checks) -> int:
    """One `mlflow ui` and one headless Chromium for all the checks; their problems printed, exit 1 if any."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]  # one browser: MLflow's default 4 took 19 s to start on 2 cores
    problems = []
    with local_server(command, "/health", port, env=TRACKING_SERVER_ENV) as url, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        for check in checks:
            problems += check(chromium.new_page(viewport={"width": 1900, "height": 1000}), url)
        chromium.close()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _check_runs(page, url: str, experiment_id: str, runs, model: str, version: str, out: Path) -> list[str]:
    """The two latest pipeline runs in the runs table (their GLUE score and retention on screen), side by side in
    the compare view, and the champion's model card."""
    problems = []
    page.set_viewport_size({"width": 1900, "height": 700})
    # workflowType: the model-training view (the experiment is tagged for it; the toggle is the user's).
    page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    page.wait_for_selector(f"text={runs[0].info.run_name}", timeout=60_000)
    _close_assistant(page)
    search = page.get_by_placeholder("metrics.rmse", exact=False)
    search.fill("tags.stage = 'pipeline'")
    search.press("Enter")
    # exact: "Show more columns (N total)" also matches the name when the table is wide
    page.get_by_role("button", name="Columns", exact=True).click()
    for column in ("Source", "Models"):  # empty for these runs: room for the metrics
        page.get_by_placeholder("Search columns").fill(column)
        page.get_by_text(column, exact=True).last.click()
    for column in COLUMNS:
        page.get_by_placeholder("Search columns").fill(column)
        page.get_by_text(column, exact=True).last.click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "mlflow_runs_table.png"))
    table = page.inner_text("body")
    for column in COLUMNS:
        if column not in table:
            problems.append(f"column {column} not shown in the runs table")
    for run in runs:
        for metric in CHECKED:
            shown = _as_shown(run.data.metrics[metric])
            if shown not in table:
                problems.append(f"run {run.info.run_name}: {metric} {shown} not on screen")

    ids = ",".join(f'"{run.info.run_id}"' for run in runs)
    page.goto(f"{url}/#/compare-runs?runs=[{ids}]&experiments=[\"{experiment_id}\"]")
    page.wait_for_selector("text=glue_retention", timeout=60_000)
    page.wait_for_timeout(1500)
    # The metrics of both runs side by side (below the plots; the page scrolls inside its own frame).
    page.get_by_text("student_glue_score", exact=True).last.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "mlflow_compare_runs.png"))

    page.goto(f"{url}/#/models/{model}/versions/{version}")
    page.wait_for_selector("text=distilflow student", timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "mlflow_model_version.png"), full_page=True)
    print(f"screenshots in {out}: mlflow_runs_table.png, mlflow_compare_runs.png, mlflow_model_version.png")
    return problems


def _sweep_variants(experiment_id: str, sweep: str) -> list:
    """The sweep's finished variant runs (a failed one has no scores to compare)."""
    parents = mlflow.search_runs([experiment_id], f"tags.sweep = '{sweep}' and tags.stage = 'sweep'",
                                 output_format="list")
    if not parents:
        return []
    return mlflow.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}' and "
                              "attributes.status = 'FINISHED'", output_format="list")


def _compare_variants(page, url: str, experiment_id: str, variants, out: Path) -> list[str]:
    """The compare view of a sweep's variants: the params they change and their selection score on screen."""
    varied = sorted({key for run in variants for key, value in run.data.params.items()
                     if len({r.data.params.get(key) for r in variants}) > 1})
    page.set_viewport_size({"width": 1600, "height": 1000})
    ids = ",".join(f'"{run.info.run_id}"' for run in variants)
    page.goto(f"{url}/#/compare-runs?runs=[{ids}]&experiments=[\"{experiment_id}\"]")
    page.wait_for_selector("text=Parallel Coordinates Plot", timeout=60_000)
    _close_assistant(page)
    _plot_against(page, "student_selection_glue_score")
    page.screenshot(path=str(out / "mlflow_sweep_compare.png"), full_page=True)
    shown = page.inner_text("body")
    problems = [f"{key} not on screen" for key in varied if key not in shown] or ([] if varied else ["no param varies"])
    problems += [f"variant {run.data.tags['variant']}: {key}={run.data.params[key]} not on screen"
                 for run in variants for key in varied if key in run.data.params and run.data.params[key] not in shown]
    print(f"screenshot in {out}: mlflow_sweep_compare.png ({len(variants)} variants; varied: {', '.join(varied)})")
    return problems


def _plot_against(page, metric: str) -> None:
    """The parallel-coordinates plot against `metric` alone (MLflow picks a metric of its own at first)."""
    metrics = page.locator(".du-bois-light-select").nth(1)  # Parameters:, Metrics:
    for remove in metrics.locator(".du-bois-light-select-selection-item-remove").all():
        remove.click()
    metrics.click()
    page.keyboard.type(metric)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.wait_for_timeout(2000)


def _close_assistant(page) -> None:
    """The assistant panel takes a third of the screen and has nothing to do with training runs."""
    panel_close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if panel_close.count():
        panel_close.click()
        page.wait_for_timeout(300)


def _as_shown(value: float) -> str:
    """The runs table rounds metrics to 4 significant digits or fewer; its first 4 characters are shown."""
    return f"{value:.4g}"[:4]


if __name__ == "__main__":
    sys.exit(main())
