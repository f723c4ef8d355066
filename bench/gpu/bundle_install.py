"""Install the GPU bundle's wheels (bench/gpu/bundle.sh) into a target folder, as bench/gpu/check.sh does.

    python3 bench/gpu/bundle_install.py .gpu_bundle/wheels /tmp/bundle/site-packages

The wheels of packages the image lacks are always installed. pyarrow, fsspec and typer are on the GPU
image already: the carried wheel goes in only where the image's version does not satisfy what the
carried packages require (and what distilflow's CLI needs of typer). Each decision is printed, so the
check's log says which it was. Any failure exits 1 with one line: a check that cannot import its
packages must stop before it spends GPU time.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

IMAGE_HAS = {"pyarrow", "fsspec", "typer"}
# cli/app.py catches typer.TyperException (typer vendors its own click from 0.29 on)
OWN_REQUIREMENTS = [Requirement("typer>=0.29")]


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    requirements = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def installed_version(name: str) -> Version | None:
    try:
        return Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        return None


def choose(wheels: list[Path]) -> list[Path]:
    """The wheels to install: all but those of IMAGE_HAS whose installed version satisfies every need."""
    needs = [r for wheel in wheels for r in wheel_requirements(wheel)] + OWN_REQUIREMENTS
    chosen = []
    for wheel in wheels:
        name = canonicalize_name(parse_wheel_filename(wheel.name)[0])
        if name not in IMAGE_HAS:
            chosen.append(wheel)
            continue
        have = installed_version(name)
        specifiers = [str(r.specifier) for r in needs if canonicalize_name(r.name) == name and str(r.specifier)]
        wanted = ",".join(specifiers) or "any version"
        if have is not None and all(have in r.specifier for r in needs if canonicalize_name(r.name) == name):
            print(f"bundle: {name}: the image's {have} satisfies {wanted}; the carried wheel is left out")
        else:
            print(f"bundle: {name}: the image has {have or 'none'}, needed {wanted}; the carried {wheel.name} goes in")
            chosen.append(wheel)
    return chosen


def main() -> None:
    wheels_dir, target = Path(sys.argv[1]), Path(sys.argv[2])
    wheels = sorted(wheels_dir.glob("*.whl"))
    if not wheels:
        sys.exit(f"bundle: no wheels in {wheels_dir}: run `bash bench/gpu/bundle.sh` and carry .gpu_bundle")
    chosen = choose(wheels)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                           "--no-cache-dir", "--upgrade", "--target", str(target), *map(str, chosen)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bundle: pip could not install the wheels: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    print(f"bundle: {len(chosen)} of {len(wheels)} wheels installed into {target}")


if __name__ == "__main__":
    main()
