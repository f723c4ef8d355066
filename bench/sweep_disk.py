"""What a sweep's variants cost on disk: the DVC cache each variant's experiment added, measured from the cache.

    python bench/sweep_disk.py NAME [--write]      # in the project, after `distilflow sweep --name NAME ...`

For each experiment of sweep NAME (refs/exps .../NAME-<variant>): the files of the outputs in its dvc.lock that
no other experiment and not the last commit's dvc.lock (the outputs of `make run`) hold, with their size in the DVC
cache. That is what `distilflow sweep --gc` gives back when that variant loses; a variant whose stages came from
the run-cache adds nothing. --write saves bench/results/sweep-disk-NAME.json (bytes per variant and per output,
the commit, machine and date), which docs/how-to.md cites.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from provenance import now, provenance  # bench/, beside this file

from distilflow.ops import experiments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    names = sorted(name for name in experiments.finished() if name.startswith(f"{args.sweep}-"))
    if not names:
        print(f"error: no finished experiment of sweep {args.sweep} here: run `distilflow sweep --name {args.sweep} "
              "...` in this project first", file=sys.stderr)
        return 2
    held = {name: _objects(experiments.read(name, "dvc.lock")) for name in experiments.finished()}
    committed = _objects(Path("dvc.lock").read_text() if Path("dvc.lock").is_file() else None)
    variants = {}
    for name in names:
        elsewhere = set().union(*committed.values(), *(objects for other, outputs in held.items() if other != name
                                                       for objects in outputs.values()))
        added = {path: sum(_size(md5) for md5 in objects - elsewhere) for path, objects in held[name].items()}
        variants[name.removeprefix(f"{args.sweep}-")] = {"bytes": sum(added.values()), "by_output": added}
    for variant, cost in variants.items():
        print(f"{variant}: {cost['bytes'] / 1e6:.1f} MB  " + ", ".join(
            f"{path} {size / 1e6:.1f} MB" for path, size in cost["by_output"].items() if size))
    if args.write:
        result = {"command": f"python bench/sweep_disk.py {args.sweep} --write", "sweep": args.sweep,
                  "variants": variants, **provenance(), "date": now()}
        out = Path(__file__).parent / "results" / f"sweep-disk-{args.sweep}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written: {out}")
    return 0


def _objects(lock_text: str | None) -> dict[str, set[str]]:
    """output path -> the md5s of the cache objects it is made of (a folder: its .dir listing and its files)."""
    found = {}
    for path, md5 in experiments.lock_outputs(lock_text).items():
        found[path] = {md5}
        if md5.endswith(".dir") and _path(md5).is_file():
            found[path] |= {entry["md5"] for entry in json.loads(_path(md5).read_text())}
    return found


def _path(md5: str) -> Path:
    return experiments.CACHE / md5[:2] / md5[2:]


def _size(md5: str) -> int:
    path = _path(md5)
    return path.stat().st_size if path.is_file() else 0


if __name__ == "__main__":
    sys.exit(main())
