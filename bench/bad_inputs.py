"""Try bad inputs through the CLI, as a user would, and print what each gives.

    python bench/bad_inputs.py [WORKDIR]

Runs every case in WORKDIR (default: a fresh temporary folder holding a copy of params.yaml) and
prints a markdown table: exit code, whether the answer was one `error:` line, and that line. A row
marked TRACEBACK, ACCEPTED or NOISY (the line came after other output, e.g. log chatter) is a bug. The cases that need real work (a prepared corpus, a trained
student) are in the tests; these are the ones a user meets before any work starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOT_A_MODEL = "not-a-model"  # a folder with a config.json and no weights
TOKENIZER_ONLY = "tokenizer-only"  # a model's config and tokenizer, its weights missing

CASES: list[tuple[str, list[str]] | tuple[str, list[str], dict[str, str]]] = [
    ("non-numeric max_steps", ["distill", "--set", "distill.train.max_steps=abc"]),
    ("negative max_steps", ["distill", "--set", "distill.train.max_steps=-1"]),
    ("temperature 0", ["distill", "--set", "distill.loss.temperature=0"]),
    ("temperature .inf", ["distill", "--set", "distill.loss.temperature=.inf"]),
    ("learning_rate .nan", ["distill", "--set", "distill.train.learning_rate=.nan"]),
    ("max_seq_length 0", ["prepare", "--set", "data.max_seq_length=0"]),
    ("repeated student layers", ["distill", "--set", "student.layers=[0,0,1]"]),
    ("unknown layer rule", ["distill", "--set", "student.layers=middle"]),
    ("--set without '='", ["distill", "--set", "distill.loss.temperature"]),
    ("--set on a non-mapping", ["distill", "--set", "data.max_seq_length.x=1"]),
    ("unknown GLUE task", ["glue-task", "nosuch"]),
    ("unknown GLUE task in the list", ["glue", "--model", "artifacts/student", "--set", "glue.tasks=[rte,nosuch]"]),
    ("missing params file", ["distill", "--params", "no-such-params.yaml"]),
    ("params file that is a list", ["distill", "--params", "list.yaml"]),
    ("empty params file", ["distill", "--params", "empty.yaml"]),
    ("params file that is binary", ["distill", "--params", "binary.yaml"]),
    ("missing prepared data", ["distill", "--set", "paths.prepared=nowhere"]),
    ("missing teacher folder", ["distill", "--set", "paths.teacher=nowhere"]),
    ("teacher Hub id not found", ["prepare", "--set", "teacher.model=no-such-org/no-such-model"]),
    ("teacher folder without weights", ["teacher", "--set", f"teacher.model={NOT_A_MODEL}"]),
    ("teacher is a file", ["prepare", "--set", "teacher.model=params.yaml"]),
    ("evaluate a missing model", ["evaluate", "--model", "nowhere"]),
    ("resume with no checkpoint", ["distill", "--resume", "--set", "paths.prepared=nowhere"]),
    ("--resume and --restart", ["distill", "--resume", "--restart"]),
    ("tracking URI is a file", ["prepare", "--set", "tracking.tracking_uri=sqlite:///params.yaml"]),
    ("register before any report", ["register", "--set", "paths.glue=nowhere"]),
    ("promote an unknown version", ["promote", "999"]),
    ("promote a non-number", ["promote", "latest-ish"]),
    ("rollback with no history", ["rollback", "--set", "registry.model_name=never-registered"]),
    ("models of an unknown name", ["models", "--set", "registry.model_name=never-registered"]),
    ("tracking URI is a folder", ["prepare", "--set", "tracking.tracking_uri=sqlite:///data"]),
    ("tracking URI unknown scheme", ["prepare", "--set", "tracking.tracking_uri=nosuch://x"]),
    ("corpus pattern matches nothing", ["prepare", "--set", "data.train.files=[no/such/*.txt]"]),
    ("GLUE source missing", ["glue-task", "rte", "--set", "glue.source=nowhere"]),
    ("deploy without a pool", ["deploy"]),
    ("serve with a bad cron", ["serve", "--set", "orchestration.schedule=not a cron"]),
    # issue 23
    ("a section given twice", ["distill", "--params", "twice.yaml"]),
    ("a quote in registry.model_name", ["models", "--set", "registry.model_name=it's"]),
    ("evaluate --max-sequences 0", ["evaluate", "--model", "nowhere", "--max-sequences", "0"]),
    ("evaluate --max-sequences -5", ["evaluate", "--model", "nowhere", "--max-sequences", "-5"]),
    ("evaluate an unknown split", ["evaluate", "--model", "nowhere", "--split", "train"]),
    ("a FIFO as the corpus", ["prepare", "--set", "data.train.files=[fifo]"]),
    ("a folder as the corpus", ["prepare", "--set", "data.train.files=[folder]"]),
    ("a binary corpus file", ["prepare", "--set", "data.train.files=[binary.yaml]"]),
    ("teacher folder with a tokenizer, no weights", ["prepare", "--set", f"teacher.model={TOKENIZER_ONLY}"]),
    ("PREFECT_API_URL with no server: pipeline", ["pipeline"], {"PREFECT_API_URL": "http://127.0.0.1:9/api"}),
    ("PREFECT_API_URL with no server: serve", ["serve", "--cron", "0 3 * * 0"], {"PREFECT_API_URL": "http://127.0.0.1:9/api"}),
    ("an MLflow artifact root that cannot be made", ["prepare", "--set", "tracking.artifact_root=/proc/distilflow-artifacts",
                                       "--set", "tracking.experiment=read-only-root"]),
    ("a promotion latency that is no measurement", ["register", "--set", "registry.promotion.latency=gpu"]),
    ("a negative GLUE learning rate", ["glue-task", "rte", "--set", "glue.learning_rates=[-1e-4]"]),
    ("GLUE sequences longer than the model", ["glue", "--model", "sentence-transformers/all-MiniLM-L6-v2", "--tasks", "rte",
                                              "--set", "glue.max_seq_length=4096"]),
    ("min_seq_length above max_seq_length", ["prepare", "--set", "data.min_seq_length=200"]),
    ("latency batch size 0", ["export", "--set", "export.latency.batch_sizes=[0]"]),
    ("no GLUE task at all", ["glue-task", "rte", "--set", "glue.tasks=[]"]),
    ("a usage error", ["distill", "--no-such-option"]),
]


def make_workdir(workdir: Path) -> None:
    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")
    (workdir / "list.yaml").write_text("- a\n- b\n")
    (workdir / "empty.yaml").write_text("")
    (workdir / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (workdir / NOT_A_MODEL).mkdir(exist_ok=True)
    (workdir / NOT_A_MODEL / "config.json").write_text('{"model_type": "bert"}')
    (workdir / "data").symlink_to(REPO / "data") if not (workdir / "data").exists() else None
    twice = (REPO / "params.yaml").read_text() + "\ndistill:\n  train:\n    max_steps: 6\n"
    (workdir / "twice.yaml").write_text(twice)
    (workdir / "folder").mkdir(exist_ok=True)
    (workdir / "folder" / "a.txt").write_text("Some text.\n")
    if not (workdir / "fifo").exists():
        os.mkfifo(workdir / "fifo")
    minilm = REPO.parent / "shared" / "hub" / "sentence-transformers" / "all-MiniLM-L6-v2"
    shutil.copytree(minilm, workdir / TOKENIZER_ONLY, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx", "onnx", "openvino"))
    shared = REPO.parent / "shared"
    if shared.exists() and not (workdir.parent / "shared").exists():
        print(f"note: {workdir.parent / 'shared'} missing; Hub copies are read from $DISTILFLOW_HUB_MIRROR", file=sys.stderr)


def verdict(code: int, stderr: str) -> tuple[str, str]:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if "Traceback" in stderr:
        return "TRACEBACK", lines[-1][:160] if lines else ""
    if code == 0:
        return "ACCEPTED", lines[-1][:160] if lines else ""
    if len(errors) == 1 and lines == errors:
        return "one line", errors[0][:220]
    if len(errors) == 1 and lines[-1] == errors[0]:  # something else said first (log chatter)
        return "NOISY", f"{len(lines) - 1} lines, then: {errors[0][:200]}"
    if code == 2 and any("Error:" in line for line in lines[-3:]):  # typer's usage message (a missing option)
        return "usage", next(line for line in lines if "Error:" in line).strip(" │")[:220]
    return "other", (lines[-1] if lines else "")[:220]


def main() -> int:
    workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="distilflow-bad-inputs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    make_workdir(workdir)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "DISTILFLOW_HUB_MIRROR": str(REPO.parent / "shared" / "hub"),
           "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the store of the workdir's params.yaml (some cases change it)
    print("| case | command | exit | outcome | message |\n|---|---|---|---|---|")
    bugs = 0
    for name, args, *extra in CASES:
        done = subprocess.run([sys.executable, "-m", "distilflow", *args], cwd=workdir, env={**env, **(extra or [{}])[0]},
                              capture_output=True, text=True, timeout=600)
        outcome, message = verdict(done.returncode, done.stderr)
        bugs += outcome in ("TRACEBACK", "ACCEPTED", "NOISY", "other")
        print(f"| {name} | `distilflow {' '.join(args)}` | {done.returncode} | {outcome} | {message.replace('|', '/')} |",
              flush=True)
    print(f"\n{bugs} of {len(CASES)} cases were not one clean line", file=sys.stderr)
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
