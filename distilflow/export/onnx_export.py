"""The student for small CPUs and phones: ONNX (torch's own exporter), then dynamic int8 quantization
(ONNX Runtime), each compared with PyTorch on real inputs before it is kept.

Dynamic int8 quantizes the weights of the linear layers ahead of time and the activations on the fly,
the scheme that costs DistilBERT-class models a fraction of a point (static quantization can destroy
accuracy without calibration). The exported graph keeps the tied MLM decoder as one tensor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from distilflow.errors import DistilflowError
from distilflow.evaluation.speed import median_ms


class LogitsOnly(torch.nn.Module):
    """(input_ids, attention_mask) -> logits: the one output a fill-mask or classifier server needs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(model: torch.nn.Module, example: dict[str, torch.Tensor], path: Path) -> Path:
    """`model`'s logits as an ONNX graph with a dynamic batch and sequence length, weights inside."""
    import warnings

    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=2, max=model.config.max_position_embeddings)
    shapes = {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}}
    with warnings.catch_warnings():  # the exporter's notes on axis names and deprecated shapes APIs
        warnings.simplefilter("ignore")
        torch.onnx.export(LogitsOnly(model.eval()), (example["input_ids"], example["attention_mask"]), str(path),
                          dynamo=True, input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_shapes=shapes, external_data=False, verbose=False)
    return path


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 (weights int8 ahead of time, activations quantized per batch)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # the quantizer's "consider pre-processing" goes to the root logger
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return target


def session(path: Path, threads: int | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # No busy-waiting after a run: spinning threads would hold the cores that the next model (PyTorch,
    # timed in turn with this one) needs: PyTorch at batch 1 measured 80 ms instead of 12 on 2 cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class ExportCheck:
    """ONNX against PyTorch on the same real inputs, at the checked positions (masked tokens, or one
    label per example for a classifier)."""

    max_abs_logit_diff: float   # over every real token (fp32: rounding only)
    top1_agreement: float       # the export's top-1 = PyTorch's
    accuracy_pytorch: float     # top-1 = the true label
    accuracy_onnx: float
    positions: int

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_{name}": float(value) for name, value in asdict(self).items()}


@torch.no_grad()
def compare(onnx_path: Path, model: torch.nn.Module, batches: list[dict[str, torch.Tensor]],
            labels: list[torch.Tensor], ignore_index: int = -100) -> ExportCheck:
    """Run both on each batch; `labels[i]` holds batch i's true labels, `ignore_index` where unchecked."""
    runner = session(onnx_path)
    model = LogitsOnly(model.eval())
    worst, counts = 0.0, {"agree": 0, "right_reference": 0, "right_exported": 0, "checked": 0}
    for batch, batch_labels in zip(batches, labels):
        reference = model(batch["input_ids"], batch["attention_mask"]).numpy()
        exported = runner.run(None, {name: batch[name].numpy() for name in ("input_ids", "attention_mask")})[0]
        real = batch["attention_mask"].bool().numpy() if reference.ndim == 3 else np.ones(len(reference), bool)
        worst = max(worst, float(np.abs(reference[real] - exported[real]).max()))
        truth = batch_labels.numpy()
        checked = truth != ignore_index
        reference_top1, exported_top1 = reference[checked].argmax(-1), exported[checked].argmax(-1)
        counts["agree"] += int((reference_top1 == exported_top1).sum())
        counts["right_reference"] += int((reference_top1 == truth[checked]).sum())
        counts["right_exported"] += int((exported_top1 == truth[checked]).sum())
        counts["checked"] += int(checked.sum())
    if counts["checked"] == 0:
        raise DistilflowError("no positions to check the export on: the check set is empty")
    n = counts["checked"]
    return ExportCheck(worst, counts["agree"] / n, counts["right_reference"] / n, counts["right_exported"] / n, n)


def onnx_latency_ms(path: Path, batch_size: int, seq_length: int, repeats: int, threads: int | None,
                    vocab_size: int) -> float:
    """Median wall time of one run over a (batch_size, seq_length) batch, after 2 warm-up runs."""
    runner = session(path, threads)
    ids = np.random.default_rng(0).integers(1000, vocab_size, (batch_size, seq_length), dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    return median_ms(lambda: runner.run(None, feed), repeats)
