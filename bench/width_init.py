"""A narrower student's initialisation: the teacher's most important slice (`student.init: teacher`,
distilflow/train/width.py) against random weights (`student.init: random`), each distilled for the same steps
from the project's teacher, scored by the distill stage on the held-out test split (masked-LM loss and accuracy).

    python bench/width_init.py --hidden-size 256 [--n-layers 3] [--steps 0,120] [--write]

Run in a project after `make run` (it reads artifacts/prepared and artifacts/teacher; nothing else is touched:
each student goes to artifacts/bench/width-init/, untracked). --write saves bench/results/width-init-<shape>.json
with the commands, the commit, the machine and the date, which docs/results.md cites.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from provenance import now, provenance  # bench/, beside this file

FOLDER = Path("artifacts/bench/width-init")
SCORES = ("test_mlm_loss", "test_mlm_accuracy", "test_teacher_agreement")


def distil(init: str, steps: int, args: argparse.Namespace) -> dict:
    """One student through the CLI's distill stage; its held-out scores and the seconds it took."""
    out = FOLDER / f"{args.n_layers}x{args.hidden_size}-{init}-{steps}"
    settings = {"student.hidden_size": args.hidden_size, "student.n_layers": args.n_layers, "student.init": init,
                "distill.train.max_steps": steps, "paths.student": out / "student",
                "paths.checkpoints": out / "checkpoints", "paths.metrics": out / "metrics", "tracking.enabled": False}
    command = [sys.executable, "-m", "distilflow", "--quiet", "distill", "--restart",
               *[part for key, value in settings.items() for part in ("--set", f"{key}={value}")]]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {init} init, {steps} steps failed: {done.stderr.strip().splitlines()[-1:]}")
    metrics = json.loads((out / "student" / "distilflow.json").read_text())["metrics"]
    return {"command": " ".join(command[1:]), "seconds": round(time.perf_counter() - started, 1),
            **{name: metrics[name] for name in SCORES if name in metrics}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-size", type=int, required=True)
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--steps", default="0,120", help="comma-separated step counts, each run from the start")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if not Path("artifacts/teacher").is_dir() or not Path("artifacts/prepared").is_dir():
        print("error: no artifacts/teacher or artifacts/prepared here: run `make run` in this project first",
              file=sys.stderr)
        return 2
    steps = [int(value) for value in args.steps.split(",")]
    results = {init: {str(n): distil(init, n, args) for n in steps} for init in ("teacher", "random")}
    last = str(steps[-1])
    for init, by_steps in results.items():
        print(f"init {init}: " + ", ".join(f"{n} steps: test MLM loss {r['test_mlm_loss']:.3f}"
                                          for n, r in by_steps.items()))
    winner = min(results, key=lambda init: results[init][last]["test_mlm_loss"])
    print(f"lower held-out MLM loss after {last} steps: init {winner}")
    if args.write:
        shape = f"{args.n_layers}x{args.hidden_size}"
        record = {"command": "python bench/width_init.py " + " ".join(sys.argv[1:]), "shape": shape,
                  "results": results, "winner_after_last_steps": winner, **provenance(), "date": now()}
        out = Path(__file__).parent / "results" / f"width-init-{shape}.json"
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
