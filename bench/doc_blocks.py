"""Generated blocks in the docs: the text between two marker comments, replaced by what a bench script
renders from its committed result files (each block has a test that it equals its render)."""

from __future__ import annotations

from pathlib import Path


def write_block(docs: Path, begin: str, end: str, block: str) -> str:
    """Replace the text from `begin` to `end` in `docs` by `block` (which starts with `begin`, ends with `end`)."""
    text = docs.read_text()
    if begin not in text:
        raise SystemExit(f"{docs} has no generated block ({begin})")
    before, rest = text.split(begin, 1)
    docs.write_text(before + block + rest.split(end, 1)[1])
    return f"written into {docs}"
