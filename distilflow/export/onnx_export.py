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


def model_inputs(model: torch.nn.Module) -> tuple[str, ...]:
    """The inputs its tokenizer gives it: token_type_ids too when the model has a type vocabulary (BERT's
    segments A and B of a sentence pair, which a pair classifier was fine-tuned on)."""
    types = getattr(model.config, "type_vocab_size", 0) or 0
    return ("input_ids", "attention_mask", "token_type_ids") if types > 1 else ("input_ids", "attention_mask")


def feed(batch: dict, names: tuple[str, ...]) -> dict:
    """`batch` as those inputs; single-segment text (no token_type_ids in the batch) is segment 0."""
    zeros = np.zeros_like if isinstance(batch["input_ids"], np.ndarray) else torch.zeros_like
    return {name: batch[name] if name in batch else zeros(batch["input_ids"]) for name in names}


class LogitsOnly(torch.nn.Module):
    """The model's inputs (model_inputs) -> logits: the one output a fill-mask or classifier server needs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.inputs = model_inputs(model)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    def on(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self(**feed(batch, self.inputs))


def export_onnx(model: torch.nn.Module, example: dict[str, torch.Tensor], path: Path) -> Path:
    """`model`'s logits as an ONNX graph with a dynamic batch and sequence length, weights inside; its inputs
    are model_inputs(model)."""
    import warnings

    forward = LogitsOnly(model.eval())
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=2, max=model.config.max_position_embeddings)
    args = feed(example, forward.inputs)
    with warnings.catch_warnings():  # the exporter's notes on axis names and deprecated shapes APIs
        warnings.simplefilter("ignore")
        torch.onnx.export(forward, tuple(args.values()), str(path), dynamo=True, input_names=list(args),
                          output_names=["logits"], dynamic_shapes={name: {0: batch, 1: sequence} for name in args},
                          external_data=False, verbose=False)
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
        reference = model.on(batch).numpy()
        exported = run_onnx(runner, batch)
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


def run_onnx(runner, batch: dict) -> np.ndarray:
    """The graph's logits on `batch`, fed every input the graph declares."""
    names = tuple(spec.name for spec in runner.get_inputs())
    arrays = {name: value.numpy() if isinstance(value, torch.Tensor) else value for name, value in batch.items()}
    return runner.run(None, feed(arrays, names))[0]


def onnx_call(path: Path, inputs: dict[str, torch.Tensor], threads: int | None):
    """One run of the graph on `inputs` (what latency times), fed every input the graph declares."""
    runner = session(path, threads)
    arrays = feed({name: tensor.numpy() for name, tensor in inputs.items()}, tuple(s.name for s in runner.get_inputs()))
    return lambda: runner.run(None, arrays)
