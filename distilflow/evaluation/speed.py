"""Model size and measured inference latency (what "40% smaller, 60% faster" is made of)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModel

from distilflow.data.sources import load_pretrained, resolve


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def size_on_disk_bytes(model_name: str) -> int | None:
    """Bytes of the weight files of a local model folder (None for a Hub id that is not local)."""
    folder = Path(resolve(model_name))
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix in {".safetensors", ".bin"})


def median_ms(call: Callable[[], object], repeats: int, warmup: int = 2,
              synchronize: Callable[[], None] = lambda: None) -> float:
    """Median wall time of `call()` over `repeats` runs after `warmup` (synchronize: wait for a GPU)."""
    return interleaved_median_ms({"call": call}, repeats, warmup, synchronize)["call"]


def interleaved_median_ms(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                          synchronize: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median wall time of each call, the calls taking turns within every repeat: a machine that slows
    down part-way (another job, thermal limits) slows all of them alike."""
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for repeat in range(warmup + repeats):
        for name, call in calls.items():
            synchronize()
            start = time.perf_counter()
            call()
            synchronize()
            if repeat >= warmup:
                timings[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in timings.items()}


def random_inputs(vocab_size: int, batch_size: int, seq_length: int) -> dict[str, torch.Tensor]:
    """A full-length batch of ordinary (non-special) token ids, the same every call: what latency is timed on."""
    input_ids = torch.randint(1000, vocab_size, (batch_size, seq_length), generator=torch.Generator().manual_seed(0))
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, batch_size: int, seq_length: int, repeats: int, device: str) -> float:
    """Median wall time of one forward pass over a (batch_size, seq_length) batch, after warm-up.

    On a GPU under bf16 autocast (how a GPU would serve it); on the CPU in fp32.
    """
    model = model.to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")
    inputs = {name: tensor.to(device) for name, tensor in
              random_inputs(model.config.vocab_size, batch_size, seq_length).items()}
    with autocast:
        return median_ms(lambda: model(**inputs), repeats,
                         synchronize=torch.cuda.synchronize if device == "cuda" else lambda: None)


def measure(model_name: str, batch_sizes: list[int], seq_length: int, repeats: int,
            gpu: bool | None = None) -> dict[str, float]:
    """Parameters, size on disk and latency on CPU (always: the promotion rule reads cpu_b1) and on
    the GPU when there is one (gpu=None) or when asked."""
    model = load_pretrained(AutoModel, model_name, "model")
    results: dict[str, float] = {"parameters": count_parameters(model)}
    size = size_on_disk_bytes(model_name)
    if size is not None:
        results["size_mb"] = size / 1e6
    devices = ["cpu"] + (["cuda"] if (torch.cuda.is_available() if gpu is None else gpu) else [])
    for device in devices:
        for batch_size in batch_sizes:
            results[f"latency_ms_{device}_b{batch_size}"] = latency_ms(model, batch_size, seq_length, repeats, device)
    return results
