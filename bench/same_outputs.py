"""Did a change leave the pipeline's outputs alone? The md5 of each model and of the tokenized corpus from two
`make run`s (each a clean clone with a fresh HOME), with the commits they ran and how long they took.

    python bench/same_outputs.py --before /tmp/before/fresh --after /tmp/after/fresh \
        --out bench/results/same_outputs-<date>.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

OUTPUTS = ("artifacts/prepared/train/data-00000-of-00001.arrow", "artifacts/teacher/model.safetensors",
           "artifacts/student/model.safetensors")


def describe(clone: Path) -> dict:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True)
    run = json.loads((clone / "artifacts" / "pipeline_run.json").read_text())
    return {"commit": commit.stdout.strip(), "command_seconds": round(run["command_seconds"], 1),
            "md5": {name: hashlib.md5((clone / name).read_bytes()).hexdigest() for name in OUTPUTS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    before, after = describe(args.before), describe(args.after)
    result = {"before": before, "after": after,
              "identical": {name: before["md5"][name] == after["md5"][name] for name in OUTPUTS},
              "command": "make run (clean clone, new empty HOME and PREFECT_HOME), each",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.exit(0 if all(result["identical"].values()) else 1)


if __name__ == "__main__":
    main()
