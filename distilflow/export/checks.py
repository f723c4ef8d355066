"""The export's tolerances (params.yaml `export:`), each refused in one line naming the limit: an export that
drifts from PyTorch never replaces the last good one."""

from __future__ import annotations

from pathlib import Path

import torch

from distilflow.config import ExportConfig
from distilflow.data.batching import pad_batch
from distilflow.data.prepared import load_prepared
from distilflow.errors import DistilflowError
from distilflow.export.onnx_export import ExportCheck
from distilflow.train.mlm_metrics import EVAL_MASK_SEED, evaluation_masker

KEEP = "nothing was replaced"


def require_fp32_match(max_abs_logit_diff: float, limits: ExportConfig, what: str) -> None:
    """An fp32 ONNX model computes what PyTorch does, to rounding."""
    if max_abs_logit_diff > limits.max_abs_logit_diff:
        raise DistilflowError(f"ONNX fp32 {what} drifts from PyTorch: max |Δ logit| {max_abs_logit_diff:.2e} > "
                              f"export.max_abs_logit_diff {limits.max_abs_logit_diff:g}: report it with your torch and "
                              f"onnxruntime versions; {KEEP}")


def require_int8_accuracy(check: ExportCheck, limits: ExportConfig) -> None:
    """int8 may lose at most export.max_int8_accuracy_drop of the held-out masked-token accuracy (its top-1
    agreement with PyTorch is reported, not required: where the student's own top-1 has a small margin,
    int8 rounding flips it between near-equal words)."""
    drop = check.accuracy_pytorch - check.accuracy_onnx
    if drop > limits.max_int8_accuracy_drop:
        raise DistilflowError(f"int8 export loses {drop:.1%} held-out masked-token accuracy ({check.accuracy_pytorch:.1%}"
                              f" -> {check.accuracy_onnx:.1%}) > export.max_int8_accuracy_drop "
                              f"{limits.max_int8_accuracy_drop:.1%}: keep the fp32 export or raise the limit knowingly; "
                              f"{KEEP}")


def require_int8_glue(pytorch_score: float, int8_score: float, limits: ExportConfig) -> None:
    """The int8 classifiers' mean dev score may fall at most export.max_int8_glue_drop below PyTorch's."""
    drop = pytorch_score - int8_score
    if drop > limits.max_int8_glue_drop:
        raise DistilflowError(f"int8 classifiers lose {100 * drop:.2f} GLUE points ({100 * pytorch_score:.1f} -> "
                              f"{100 * int8_score:.1f}) > export.max_int8_glue_drop {100 * limits.max_int8_glue_drop:g}: "
                              f"keep the fp32 export or raise the limit knowingly; {KEEP}")


def check_set(prepared_dir: Path, count: int, tokenizer) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
    """Held-out test sequences with the evaluation's fixed masks, in batches of 16, and their labels (the
    original token at masked positions, -100 elsewhere): what every export is checked on."""
    prepared = load_prepared(prepared_dir)
    if not (prepared.path / "test").exists():
        raise DistilflowError(f"no held-out test split in {prepared.path}: set data.test.files (the export is "
                              "checked on held-out text)")
    test = prepared.split("test")
    count = min(count, len(test))
    masker, generator = evaluation_masker(tokenizer), torch.Generator().manual_seed(EVAL_MASK_SEED)
    batches, masked = [], []
    for start in range(0, count, 16):
        ids, attention = pad_batch(test[start:min(start + 16, count)]["input_ids"], tokenizer.pad_token_id)
        batch = masker(ids, attention, generator)
        batches.append({"input_ids": batch.input_ids, "attention_mask": batch.attention_mask})  # one segment
        masked.append(batch.labels)
    return batches, masked
