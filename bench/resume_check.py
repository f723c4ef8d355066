"""Kill -9 a real `distilflow distill` mid-way, resume it, and compare with an uninterrupted run.

    python bench/resume_check.py [--set key=value ...]
Prints whether the two saved students (safetensors) are bit-identical.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

OUTPUT = Path("artifacts/resume_check")
SHORT_RUN = ["distill.train.max_steps=24", "distill.train.micro_batch_size=8", "distill.train.checkpoint_every=6",
             "distill.train.eval_every=1000", "distill.train.eval_sequences=32", "distill.train.log_every=2"]


def command(name: str, extra: list[str], *flags: str) -> list[str]:
    sets = [*SHORT_RUN, *extra, f"paths.student={OUTPUT / name / 'student'}",
            f"paths.checkpoints={OUTPUT / name / 'checkpoints'}"]
    return ["distilflow", "distill", *flags, *[arg for s in sets for arg in ("--set", s)]]


def main(extra: list[str]) -> None:
    subprocess.run(command("straight", extra, "--restart"), check=True)

    killed = subprocess.Popen(command("killed", extra, "--restart"))
    checkpoints = OUTPUT / "killed" / "checkpoints" / "distill"
    while not list(checkpoints.glob("step_0000012.pt")):  # let it pass the middle, then kill it hard
        if killed.poll() is not None:
            sys.exit("the run ended before it could be killed")
        time.sleep(0.5)
    time.sleep(3)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = sorted(p.name for p in checkpoints.glob("step_*.pt"))
    print(f"killed with SIGKILL; checkpoints left: {left}")
    subprocess.run(command("killed", extra, "--resume"), check=True)

    straight = load_file(OUTPUT / "straight" / "student" / "model.safetensors")
    resumed = load_file(OUTPUT / "killed" / "student" / "model.safetensors")
    identical = straight.keys() == resumed.keys() and all((straight[k] == resumed[k]).all() for k in straight)
    print(f"{len(straight)} tensors; bit-identical after kill -9 and --resume: {identical}")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main([arg for arg in sys.argv[1:] if arg != "--set"])
