"""`distilflow evaluate` (by hand, not a stage): held-out masked-LM metrics of any MLM on a prepared
split, and its top-1 agreement with a teacher."""

from __future__ import annotations

from distilflow.base.devices import pick_autocast_dtype, pick_device
from distilflow.base.pretrained import load_masked_lm, load_tokenizer
from distilflow.config import Params
from distilflow.data.prepared import load_prepared
from distilflow.errors import DistilflowError
from distilflow.train.mlm_metrics import masked_lm_metrics
from distilflow.train.teacher_head import missing_head_weights


def run(params: Params, model_name: str, teacher_name: str | None = None, split: str = "test",
        max_sequences: int | None = None) -> dict[str, float]:
    prepared = load_prepared(params.paths.prepared)
    if not (prepared.path / split).exists():
        raise DistilflowError(f"prepared data has no '{split}' split: set data.test in params.yaml or use --split validation")
    model, missing = load_masked_lm(model_name, role="model")
    if missing_head_weights(model, missing):
        raise DistilflowError(f"model '{model_name}' has no masked-LM head: evaluate a folder with a trained head")
    teacher = load_masked_lm(teacher_name, role="teacher")[0].eval() if teacher_name else None
    tokenizer = load_tokenizer(model_name)
    train_cfg = params.distill.train  # the device and precision that distillation uses
    device = pick_device(train_cfg.device)
    return masked_lm_metrics(model.to(device), prepared.split(split), tokenizer,
                             teacher=teacher.to(device) if teacher is not None else None, max_sequences=max_sequences,
                             device=device, autocast_dtype=pick_autocast_dtype(train_cfg.precision, device))
