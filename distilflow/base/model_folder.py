"""The model folders distilflow writes (the teacher with its head, the student): save_pretrained
output plus `distilflow.json`, which says what made the model and marks the folder as ours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from distilflow.base.files import read_json, replace_folder
from distilflow.errors import DistilflowError

MODEL_META = "distilflow.json"


def save_model(model, tokenizer, output: Path, meta: dict, publish: Callable[[Path], dict | None] | None = None) -> None:
    """save_pretrained into a staging folder, then swap it in: never a half-written model folder.

    `publish(staging)` (e.g. logging it to MLflow) runs before the swap: if it fails, the previous
    model stays where it was. What it returns (e.g. the MLflow model id) is added to the meta."""

    def fill(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / MODEL_META).write_text(json.dumps(meta, indent=2, default=str))
        published = {key: value for key, value in ((publish(staging) if publish else None) or {}).items()
                     if value is not None}
        if published:
            (staging / MODEL_META).write_text(json.dumps({**meta, **published}, indent=2, default=str))

    replace_folder(output, fill, marker=MODEL_META)


def read_model_meta(folder: Path, made_by: str) -> dict:
    """The meta of a model folder a previous stage wrote; a one-line error naming that stage if absent."""
    meta = read_json(folder / MODEL_META)
    if not meta:
        raise DistilflowError(f"no model in '{folder}' (no {MODEL_META}): run `distilflow {made_by}` first, "
                              "or `dvc repro` for the whole pipeline")
    return meta


def count_parameters(model) -> int:
    """The parameters of a torch module (the student's size next to the teacher's)."""
    return sum(parameter.numel() for parameter in model.parameters())
