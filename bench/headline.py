"""The headline (docs/results.md §12): GLUE retention of the default 3-layer student over seeds, every
recipe chosen on a held-out slice of the training sets and never on dev; and the seed's claim, distilled >
MLM-only > the 0-step copy > random init, on GLUE.

    python bench/headline.py                  # the campaign, resumable (params/headline.yaml)
    python bench/headline.py --workers 2      # two jobs side by side, one thread each (2 cores)
    python bench/headline.py --status         # what is done, running, waiting
    python bench/headline.py --job NAME       # one job of the plan (e.g. student.0-step), beside the others
    python bench/headline.py --report         # docs/results.md §12's tables and the README's headline sentence
    python bench/headline.py --report --write # ... written into docs/results.md and README.md (tests keep them equal)

Each job writes one JSON (and a teacher its soft targets) under bench/results/headline/ the moment it ends,
with its figures, recipe, seed, commit, machine, threads and date; a job whose file exists is not redone,
so a killed campaign loses at most the jobs it was running, and of those only the steps since their last
checkpoint (every 100 steps, under artifacts/headline/finetune/: a 10-epoch CoLA teacher outlasts a
session). The pinned data, the prepared corpus, the teacher with its head and the students live in data/ and
artifacts/headline/ (not committed): on a new machine, the jobs that made them run again when a job still
to do needs them, and each such rebuild is recorded beside the first (bench/results/headline/rebuilt/). A
rebuilt model can differ from the first in the last bits (float rounding differs between machines): every
student score names the weights it was made with (`student_fingerprint`) and the report shows each build's
held-out MLM loss.

  1. students (params/headline.yaml: 1,000 distillation steps, layers 1,3,5): the default one, a second
     distillation seed, and the ablation's MLM-only, 0-step copy and random init
  2. selection, seed 42, on the held-out slice (glue.selection.holdout of each training set, stratified):
     teacher recipes TEACHER_RECIPES, student recipes STUDENT_RECIPES (lr 1e-4 throughout); the student
     learns from the selected teacher recipe's soft targets; each task picks its own best recipe
  3. final, on the dev sets, full training sets, seeds glue.seeds: teacher and default student, each with
     its selected recipe per task, the student's soft targets from the teacher of the same seed
  4. the distillation seed and the ablation: the other students, the default student's recipe and seeds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params" / "headline.yaml"
RESULTS = ROOT / "bench" / "results" / "headline"
REBUILT = RESULTS / "rebuilt"  # a job's second record, when a new machine had to make its products again
WORK = ROOT / "artifacts" / "headline"
DATA = ROOT / "data"  # what `distilflow pin` puts under DVC
TEACHER = "teacher"
STUDENTS = {  # name: distill overrides on params/headline.yaml
    "distilled": [],
    "distilled-seed43": ["distill.train.seed=43"],
    "mlm-only": ["distill.loss.alpha_ce=0", "distill.loss.alpha_cos=0", "distill.loss.alpha_mlm=1"],
    "0-step": ["distill.train.max_steps=0"],
    "random-init": ["student.init=random"],
}
DEFAULT_STUDENT = "distilled"
# The grid, kept small (what §8-§11 chose on dev): glue settings over params/headline.yaml's glue section
TEACHER_RECIPES = {"3ep": {"epochs": 3}, "10ep": {"epochs": 10}}
STUDENT_RECIPES = {
    "3ep": {"epochs": 3, "distillation": {"weight": 0.0}},
    "3ep+td": {"epochs": 3, "distillation": {"weight": 0.5, "temperature": 2.0, "epochs": None}},
    "10ep+td": {"epochs": 3, "distillation": {"weight": 0.5, "temperature": 2.0, "epochs": 10}},
}
SELECTION_SEED = 42


@dataclass
class Job:
    name: str  # the result file's stem, unique
    needs: list[str] = field(default_factory=list)
    run: Callable[[], dict] = lambda: {}


# -- the plan ---------------------------------------------------------------------------------------
def plan(params) -> list[Job]:
    """Every job, most wanted first; jobs whose recipe depends on the selection read it when they start."""
    tasks, seeds = params.glue.tasks, params.glue.seeds
    jobs = [Job("pin", run=pin), Job("prepare", ["pin"], lambda: stage("prepare")),
            Job("teacher-head", ["prepare"], lambda: stage("teacher"))]
    jobs.append(distill_job(DEFAULT_STUDENT))
    for task in tasks:
        for recipe in TEACHER_RECIPES:
            jobs.append(glue_job(params, "selection", TEACHER, task, recipe, SELECTION_SEED))
    for task in tasks:
        for recipe in STUDENT_RECIPES:
            jobs.append(glue_job(params, "selection", DEFAULT_STUDENT, task, recipe, SELECTION_SEED))
    for seed in seeds:
        for task in tasks:
            jobs.append(glue_job(params, "final", TEACHER, task, None, seed))
            jobs.append(glue_job(params, "final", DEFAULT_STUDENT, task, None, seed))
    for student in (s for s in STUDENTS if s != DEFAULT_STUDENT):
        jobs.append(distill_job(student))
        for seed in seeds:
            for task in tasks:
                jobs.append(glue_job(params, "final", student, task, None, seed))
    return jobs


def result_name(phase: str, model: str, task: str, recipe: str | None, seed: int) -> str:
    return f"{phase}.{model}.{task}.{recipe or 'selected'}.seed{seed}"


def distill_job(student: str) -> Job:
    return Job(f"student.{student}", ["teacher-head"], lambda: distill(student))


def glue_job(params, phase: str, model: str, task: str, recipe: str | None, seed: int) -> Job:
    role = "teacher" if model == TEACHER else "student"
    recipes = TEACHER_RECIPES if role == "teacher" else STUDENT_RECIPES
    needs = ["pin"] if model == TEACHER else ["pin", f"student.{model}"]
    if recipe is None:  # the final phase: the recipe the selection chose for this role and task
        needs += [result_name("selection", TEACHER if role == "teacher" else DEFAULT_STUDENT, task, r, SELECTION_SEED)
                  for r in recipes]
    if role == "student":  # the soft targets of the teacher that is its pair (same phase and seed)
        needs += [result_name("selection", TEACHER, task, r, SELECTION_SEED) for r in TEACHER_RECIPES]
        if phase == "final":
            needs.append(result_name("final", TEACHER, task, None, seed))
    name = result_name(phase, model, task, recipe, seed)
    return Job(name, needs, lambda: fine_tune(params, phase, model, task, recipe, seed))


# -- what a job does --------------------------------------------------------------------------------
def stage(command: str, overrides: list[str] = (), folder: Path | None = None) -> dict:
    folder = folder or WORK
    paths = [f"paths.prepared={WORK / 'prepared'}", f"paths.teacher={WORK / 'teacher'}",
             f"paths.student={folder / 'student'}", f"paths.checkpoints={folder / 'checkpoints'}",
             f"paths.metrics={folder / 'metrics'}", f"paths.glue={folder / 'glue'}",
             f"paths.export={folder / 'export'}"]
    sets = [arg for override in [*overrides, *paths] for arg in ("--set", override)]
    resume = ["--resume", "--discard-stale"] if command in ("teacher", "distill") else []
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "distilflow", command, "--params", str(PARAMS), *resume, *sets],
                   check=True, cwd=ROOT)
    record = {"command": f"distilflow {command}", "overrides": list(overrides),
              "seconds": time.perf_counter() - started}
    if command == "teacher":
        meta = json.loads((WORK / "teacher" / "distilflow.json").read_text())
        record.update(fingerprint=meta["fingerprint"], metrics=meta["metrics"])
    return record


def pin() -> dict:
    """The corpus, GLUE data and teacher under DVC (data/*.dvc), as `make run` pins them."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "distilflow", "pin", "--params", str(PARAMS)], check=True, cwd=ROOT)
    return {"command": "distilflow pin", "seconds": time.perf_counter() - started,
            "dvc": {name: yaml_md5(ROOT / f"data/{name}.dvc") for name in ("corpus", "glue", "teacher")}}


def yaml_md5(dvc_file: Path) -> str:
    import yaml

    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


def distill(student: str) -> dict:
    record = stage("distill", STUDENTS[student], student_folder(student).parent)
    meta = student_meta(student)
    return {**record, "student": student, "fingerprint": meta["fingerprint"], "teacher_layers": meta["teacher_layers"],
            "metrics": meta["metrics"]}


def student_folder(student: str) -> Path:
    return WORK / "students" / student / "student"


def student_meta(student: str) -> dict:
    """What `distilflow distill` wrote beside the weights: their fingerprint, the teacher layers, the metrics."""
    return json.loads((student_folder(student) / "distilflow.json").read_text())


def products(name: str) -> list[Path]:
    """What job `name` leaves on this machine (not committed) for the jobs after it; none for a GLUE job."""
    if name == "pin":
        return [DATA / source for source in ("corpus", "glue", "teacher")]
    if name == "prepare":
        return [WORK / "prepared" / "meta.json"]
    if name == "teacher-head":
        return [WORK / "teacher" / "distilflow.json"]
    if name.startswith("student."):
        return [student_folder(name.removeprefix("student.")) / "distilflow.json"]
    return []


def here(name: str) -> bool:
    """Done, and what it made is on this machine."""
    return done(name) and all(path.exists() for path in products(name))


def chosen_recipe(role_model: str, task: str) -> str:
    """The recipe with the best held-out score at the selection seed (ties: the first of the grid)."""
    recipes = TEACHER_RECIPES if role_model == TEACHER else STUDENT_RECIPES
    scores = {r: read(result_name("selection", role_model, task, r, SELECTION_SEED))["score"] for r in recipes}
    return max(recipes, key=lambda r: scores[r])


def recipe_config(params, role: str, recipe: str, holdout: bool):
    """glue settings for one fine-tuning: params/headline.yaml's, the recipe's, and the selection mode."""
    from distilflow.config import GlueConfig

    base = params.glue.model_dump(mode="json")
    changes = (TEACHER_RECIPES if role == "teacher" else STUDENT_RECIPES)[recipe]
    merged = {**base, **{k: v for k, v in changes.items() if k != "distillation"},
              "distillation": {**base["distillation"], **changes.get("distillation", {})}}
    if not holdout:
        merged["selection"] = {**base["selection"], "holdout": 0.0}
    config = GlueConfig.model_validate(merged)
    if role == "student" and config.distillation.weight > 0 and config.distillation.epochs:
        config = config.model_copy(update={"epochs": config.distillation.epochs})  # the student's own epochs
    return config


def fine_tune(params, phase: str, model: str, task_name: str, recipe: str | None, seed: int) -> dict:
    import numpy as np
    from transformers.trainer_utils import get_last_checkpoint

    from distilflow.evaluation.finetune import finetune_and_evaluate
    from distilflow.evaluation.glue_data import get_task, task_score
    from distilflow.evaluation.glue_runs import task_splits

    role = "teacher" if model == TEACHER else "student"
    recipe = recipe or chosen_recipe(TEACHER if role == "teacher" else DEFAULT_STUDENT, task_name)
    config = recipe_config(params, role, recipe, holdout=phase == "selection")
    task = get_task(task_name)
    splits = task_splits(task, config)
    source = params.teacher.model if role == "teacher" else str(student_folder(model))
    weights = None if role == "teacher" else student_meta(model)["fingerprint"]
    teacher_pair, soft_targets = None, None
    if role == "student" and config.distillation.weight > 0:
        teacher_pair = (result_name("selection", TEACHER, task_name, chosen_recipe(TEACHER, task_name), SELECTION_SEED)
                        if phase == "selection" else result_name("final", TEACHER, task_name, None, seed))
        soft_targets = np.load(RESULTS / f"{teacher_pair}.soft_targets.npy")
    name = result_name(phase, model, task_name, recipe if phase == "selection" else None, seed)
    checkpoints = checkpoint_folder(name)
    resumed_from = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None  # a cut attempt's
    with JobClock(checkpoints / "seconds.txt") as clock:
        outcome = finetune_and_evaluate(source, task, splits, config, seed, config.learning_rates[0],
                                        soft_targets=soft_targets, predict_train=role == "teacher",
                                        checkpoints=checkpoints)
    if outcome.train_logits is not None:
        np.save(RESULTS / f"{name}.soft_targets.npy", outcome.train_logits.astype(np.float32))
    return {"phase": phase, "model": model, "model_source": source, "task": task_name, "recipe": recipe,
            "seed": seed, "score": task_score(task, outcome.metrics), "metrics": outcome.metrics,
            "student_fingerprint": weights,
            "evaluated_on": (f"held-out {config.selection.holdout:.0%} of the training set "
                             f"(selection seed {config.selection.seed})" if phase == "selection" else "dev"),
            "train_rows": len(splits["train"]), "soft_targets_from": teacher_pair,
            "glue": config.model_dump(mode="json", exclude={"latency", "progress"}), "seconds": clock.seconds,
            "resumed_from": Path(resumed_from).name if resumed_from else None}


class JobClock:
    """Wall seconds of a job over all its attempts: the earlier ones' total is kept in `file` (each minute, so
    a killed attempt loses at most one; the steps it redoes from its checkpoint are counted again)."""

    def __init__(self, file: Path):
        self.file, self.stopped, self.ended = file, threading.Event(), None
        self.before = float(file.read_text()) if file.is_file() else 0.0

    @property
    def seconds(self) -> float:
        return self.before + (self.ended or time.perf_counter()) - self.started

    def __enter__(self) -> "JobClock":
        self.started = time.perf_counter()
        threading.Thread(target=self._keep, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.ended = time.perf_counter()
        self.stopped.set()

    def _keep(self) -> None:
        while not self.stopped.wait(60):
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.file.write_text(f"{self.seconds:.1f}")


def checkpoint_folder(name: str) -> Path:
    """Where job `name` keeps its fine-tuning checkpoints: a session's end loses at most the last 100 steps."""
    return WORK / "finetune" / name


# -- running it -------------------------------------------------------------------------------------
def read(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def done(name: str) -> bool:
    return (RESULTS / f"{name}.json").is_file()


def provenance() -> dict:
    """Taken when a job starts: the checkout may move on while it runs."""
    import torch
    import transformers

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "distilflow"],
                                capture_output=True, text=True, cwd=ROOT).stdout.strip())
    return {"commit": commit + ("+uncommitted distilflow changes" if dirty else ""),
            "params": str(PARAMS.relative_to(ROOT)),
            "machine": f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()})",
            # the kernels torch picked (AVX2, AVX512...): a re-distilled student matches its fingerprint only
            # where they are the same
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__}


def held(name: str) -> bool:
    """A process on this machine runs job `name`: its lock names a live pid (a killed session leaves a stale one)."""
    try:
        pid = (RESULTS / f"{name}.running").read_text()
        if not pid:
            return True  # its worker created it this instant and is writing its pid
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError):
        return False


def claim(name: str) -> bool:
    """Take a job for this process (a lock file with its pid); a lock whose process is gone is taken over."""
    lock = RESULTS / f"{name}.running"
    try:
        with open(lock, "x") as handle:
            handle.write(str(os.getpid()))
        return True
    except FileExistsError:
        if held(name):
            return False
        lock.unlink(missing_ok=True)
        return claim(name)


def to_run(jobs: list[Job], wanted: list[Job]) -> list[Job]:
    """`wanted` (jobs not done) and, in plan order, the done jobs whose products they need, directly or through
    another such job, and this machine lacks (a new machine): those are rebuilt."""
    by_name = {job.name: job for job in jobs}
    rebuild, names = set(), [need for job in wanted for need in job.needs]
    while names:
        name = names.pop()
        if name not in rebuild and done(name) and not here(name):
            rebuild.add(name)
            names.extend(by_name[name].needs)
    return [job for job in jobs if job.name in rebuild or job in wanted]


def work(params, only: str | None = None) -> None:
    """Run jobs until none is left: the first one to run (`to_run`), not taken, whose needs are here (with
    `only`, that one job and what it needs rebuilt)."""
    while True:
        jobs = plan(params)
        wanted = [job for job in jobs if only in (None, job.name) and not (here(job.name) if only else done(job.name))]
        if only is not None and only not in {job.name for job in jobs}:
            raise SystemExit(f"no job named {only}: `python bench/headline.py --status` lists them")
        queue = to_run(jobs, wanted)
        if not queue:
            print(f"headline: {only} is done" if only else "headline: every job is done", flush=True)
            return
        ready = [job for job in queue if all(here(need) for need in job.needs)]
        job = next((job for job in ready if claim(job.name)), None)
        if job is None:
            time.sleep(30)  # the others wait on jobs another worker is running
            continue
        print(f"== {job.name}{' (rebuilt on this machine)' if done(job.name) else ''} ({len(queue)} left)", flush=True)
        run_job(job)


def run_job(job: Job) -> None:
    """The job's JSON; for a rebuild, a second record beside the first (rebuilt/), the first left as it is."""
    try:
        if here(job.name):  # another worker did it (or rebuilt it) meanwhile
            return
        rebuilt = done(job.name)
        started = provenance()
        record = {"job": job.name, **job.run(), **started,
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if rebuilt:
            require_same_data(job.name, record)
            record["rebuilds"] = json.loads((RESULTS / f"{job.name}.json").read_text()).get("finished")
        target = rebuilt_record(job.name) if rebuilt else RESULTS / f"{job.name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(checkpoint_folder(job.name), ignore_errors=True)
    finally:
        (RESULTS / f"{job.name}.running").unlink(missing_ok=True)


def rebuilt_record(name: str) -> Path:
    """rebuilt/<job>.build<N>.json: the first build is the job's own JSON."""
    build = 2
    while (REBUILT / f"{name}.build{build}.json").exists():
        build += 1
    return REBUILT / f"{name}.build{build}.json"


def require_same_data(name: str, record: dict) -> None:
    """A rebuild may differ in the last bits of a model, never in the pinned corpus, GLUE data or teacher."""
    if name == "pin" and record["dvc"] != read("pin")["dvc"]:
        raise SystemExit(f"the pinned data differ from the campaign's ({record['dvc']} vs {read('pin')['dvc']}): "
                         "versioning.sources in params/headline.yaml must point at the same corpus, GLUE and teacher")


def status(params) -> None:
    jobs = plan(params)
    rebuild = {job.name for job in to_run(jobs, [job for job in jobs if not done(job.name)]) if done(job.name)}
    for job in jobs:
        state = ("running" if held(job.name) else "rebuild" if job.name in rebuild
                 else "done" if done(job.name) else "ready" if all(here(n) for n in job.needs) else "waiting")
        seconds = read(job.name).get("seconds") if done(job.name) else None
        print(f"{state:8} {job.name}" + (f"  ({seconds / 60:.0f} min)" if seconds else ""))
    print(f"{sum(done(job.name) for job in jobs)} of {len(jobs)} done"
          + (f"; {len(rebuild)} to rebuild on this machine (rebuilt/)" if rebuild else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="jobs side by side (threads split between them)")
    parser.add_argument("--status", action="store_true")
    parser.add_argument("--job", help="run this one job (waiting for its needs), e.g. student.0-step")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--write", action="store_true", help="with --report: into docs/results.md and README.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("DISTILFLOW_HUB_MIRROR", str(ROOT.parent / "shared" / "hub"))
    from distilflow.config.load import load_params

    os.chdir(ROOT)  # params/headline.yaml's paths are relative to the project
    params = load_params(PARAMS, [])
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report:
        from headline_report import render, render_readme, write

        tables, readme = render(RESULTS), render_readme(RESULTS)
        print(write(tables, readme) if args.write else f"{tables}\n\n{readme}")
    elif args.status:
        status(params)
    elif args.workers > 1:  # each worker its share of the cores, the same queue
        threads = max(1, (os.cpu_count() or 2) // args.workers)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        workers = [subprocess.Popen([sys.executable, __file__], env=env) for _ in range(args.workers)]
        sys.exit(max(worker.wait() for worker in workers))
    else:
        work(params, args.job)


if __name__ == "__main__":
    main()
