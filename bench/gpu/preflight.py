"""Does a GPU bundle (bench/gpu/bundle.sh) fit the Python that will install it? Checked before anything else.

    python3 bench/gpu/preflight.py .gpu_bundle            # on the device, first thing: this interpreter
    python3 bench/gpu/preflight.py .gpu_bundle --image    # here, before the call: the GPU image's facts

A wheel fits when one of its tags is one the target Python installs (cp312 wheels for Python 3.12,
py3-none-any for any), its Requires-Python admits that Python, and, against the image, what it requires
of the packages the image already has (torch, transformers, numpy, ...) is satisfied by the image's
versions. A bundle that does not fit is one line, exit 2, in seconds: no GPU time is spent on it.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

# The GPU image, as sessions read it there (/work/.library/device/KINDS.md, 2026-11): what the bundle may
# rely on. Its pyarrow, fsspec and typer versions are not known here (bench/gpu/bundle_install.py decides there).
IMAGE_PYTHON = "3.12"
IMAGE_PACKAGES = {"torch": "2.11.0", "transformers": "5.17.0", "tokenizers": "0.23.2", "huggingface-hub": "1.33.0",
                  "accelerate": "1.15.0", "safetensors": "0.8.0", "numpy": "2.5.2", "onnx": "1.23.1",
                  "onnxruntime": "1.30.0", "onnxscript": "0.7.2"}
IMAGE_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(39, 4, -1)] + ["manylinux2014_x86_64",
                                                                                  "manylinux1_x86_64", "linux_x86_64"]


def image_tags(python: str) -> set[Tag]:
    version = tuple(int(part) for part in python.split("."))
    return set(cpython_tags(version, platforms=IMAGE_PLATFORMS)) | set(compatible_tags(version, platforms=IMAGE_PLATFORMS))


def metadata_lines(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode().splitlines()


def misfit(wheel: Path, tags: set[Tag], python: str, known: dict[str, str]) -> str | None:
    """Why `wheel` does not fit (None when it does)."""
    _, _, _, wheel_tags = parse_wheel_filename(wheel.name)
    if not wheel_tags & tags:
        return f"{wheel.name} is built for {', '.join(sorted({t.interpreter for t in wheel_tags}))}, not Python {python}"
    lines = metadata_lines(wheel)
    for line in lines:
        if line.startswith("Requires-Python:") and Version(python) not in SpecifierSet(line.split(":", 1)[1].strip()):
            return f"{wheel.name} requires Python {line.split(':', 1)[1].strip()}, not {python}"
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        need = Requirement(line.split(":", 1)[1].strip())
        have = known.get(canonicalize_name(need.name))
        if need.marker is not None and not need.marker.evaluate({"extra": "", "python_version": python}):
            continue
        if have is not None and Version(have) not in need.specifier:
            return f"{wheel.name} needs {need}, and the image has {need.name} {have}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--image", action="store_true", help=f"check against the GPU image (Python {IMAGE_PYTHON})")
    args = parser.parse_args()
    python = IMAGE_PYTHON if args.image else f"{sys.version_info.major}.{sys.version_info.minor}"
    tags = image_tags(python) if args.image else set(sys_tags())
    known = {canonicalize_name(name): version for name, version in IMAGE_PACKAGES.items()} if args.image else {}
    wheels = sorted((args.bundle / "wheels").glob("*.whl"))
    if not wheels:
        print(f"preflight: no wheels in {args.bundle / 'wheels'}: run `bash bench/gpu/bundle.sh` here and carry "
              ".gpu_bundle", file=sys.stderr)
        return 2
    for wheel in wheels:
        reason = misfit(wheel, tags, python, known)
        if reason:
            print(f"preflight: {reason}: rebuild the bundle for it (`bash bench/gpu/bundle.sh`, which builds for the "
                  f"GPU image's Python {IMAGE_PYTHON})", file=sys.stderr)
            return 2
    print(f"preflight: the bundle's {len(wheels)} wheels fit Python {python}"
          + (f" and the GPU image's packages (torch {IMAGE_PACKAGES['torch']})" if args.image else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
