"""Model size and measured inference latency (what "40% smaller, 60% faster" is made of).

One timing protocol (PROTOCOL) for every latency distilflow reports, tags or compares: the models being
compared take turns within every repeat after a warm-up, and each gets the median and the interquartile
range of its repeats, with the threads and the machine named beside them. Each figure also says which
model it timed (MODEL_KINDS): the bare encoder, the fill-mask model with its vocabulary head, or a
classifier. These differ by 4x at batch 1 for a small student, since the vocabulary head dominates.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel

from distilflow.base.model_folder import count_parameters
from distilflow.base.pretrained import load_pretrained, resolve


def size_on_disk_bytes(model_name: str) -> int | None:
    """Bytes of the weight files of a local model folder (None for a Hub id that is not local)."""
    folder = Path(resolve(model_name))
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in {".safetensors", ".bin"})


PROTOCOL = "interleaved-median-iqr/1"  # a registry tag: latencies are compared only under the same protocol
WARMUP = 2
ENCODER, FILL_MASK, CLASSIFIER = "encoder", "fill-mask", "classifier"
MODEL_KINDS = {ENCODER: "the bare encoder (no head)", FILL_MASK: "the fill-mask model with its vocabulary head",
               CLASSIFIER: "a GLUE classifier"}


@dataclass(frozen=True)
class Timing:
    median_ms: float
    iqr_ms: float  # interquartile range of the repeats: how far to trust the median


def timed(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = WARMUP,
          synchronize: Callable[[], None] = lambda: None) -> dict[str, Timing]:
    """The protocol: each call's wall time over `repeats` after `warmup`, the calls taking turns within every
    repeat, so a machine that slows down part-way (another job, thermal limits) slows all of them alike.
    `synchronize` waits for a GPU."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for repeat in range(warmup + repeats):
        for name, call in calls.items():
            synchronize()
            start = time.perf_counter()
            call()
            synchronize()
            if repeat >= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: _timing(values) for name, values in times.items()}


def _timing(values: list[float]) -> Timing:
    if len(values) < 2:
        return Timing(values[0], 0.0)
    quartiles = statistics.quantiles(values, n=4)
    return Timing(statistics.median(values), quartiles[2] - quartiles[0])


def timing_metrics(prefix: str, suffix: str, timing: Timing) -> dict[str, float]:
    """{prefix}_ms_{suffix} (the median, the name the rule and tables read) and {prefix}_iqr_ms_{suffix}."""
    return {f"{prefix}_ms_{suffix}": timing.median_ms, f"{prefix}_iqr_ms_{suffix}": timing.iqr_ms}


def machine() -> dict[str, str | int]:
    """What the figures were measured on: a latency means little without it."""
    return {"machine": f"{_cpu_name()} ({os.cpu_count()} cores, {platform.machine()}, {platform.system()})",
            "threads": torch.get_num_threads(), "protocol": PROTOCOL}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def random_inputs(vocab_size: int, batch_size: int, seq_length: int) -> dict[str, torch.Tensor]:
    """A full-length batch of ordinary (non-special) token ids, the same every call: what latency is timed on."""
    input_ids = torch.randint(1000, vocab_size, (batch_size, seq_length), generator=torch.Generator().manual_seed(0))
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def forward_call(model: torch.nn.Module, inputs: dict[str, torch.Tensor], device: str) -> Callable[[], object]:
    """One forward pass of `model` on `inputs`: on a GPU under bf16 autocast (how a GPU would serve it), on
    the CPU in fp32."""
    model = model.to(device).eval()
    inputs = {name: tensor.to(device) for name, tensor in inputs.items()}

    def call():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            return model(**inputs)
    return call


def synchronizer(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else lambda: None


def measure(models: dict[str, str], batch_sizes: list[int], seq_length: int, repeats: int,
            gpu: bool | None = None) -> dict[str, dict[str, float]]:
    """Per model (role -> name): parameters, size on disk and the encoder's latency (median and IQR, the
    models interleaved) on the CPU (always: the promotion rule reads cpu_b1) and on the GPU when there is
    one (gpu=None) or when asked."""
    loaded = {role: load_pretrained(AutoModel, name, "model") for role, name in models.items()}
    results: dict[str, dict[str, float]] = {role: {"parameters": count_parameters(model)} for role, model in loaded.items()}
    for role, name in models.items():
        size = size_on_disk_bytes(name)
        if size is not None:
            results[role]["size_mb"] = size / 1e6
    devices = ["cpu"] + (["cuda"] if (torch.cuda.is_available() if gpu is None else gpu) else [])
    for device in devices:
        for batch_size in batch_sizes:
            calls = {role: forward_call(model, random_inputs(model.config.vocab_size, batch_size, seq_length), device)
                     for role, model in loaded.items()}
            for role, timing in timed(calls, repeats, synchronize=synchronizer(device)).items():
                results[role].update(timing_metrics("latency", f"{device}_b{batch_size}", timing))
    return results
