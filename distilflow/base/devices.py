"""Where and in what precision models run: the GPU when there is one (bf16 autocast), else the CPU (fp32).

The mixed-precision path is the GPU's on every device: bf16 autocast, the frozen teacher's layers stored in
bf16, fused AdamW. `precision: bf16` runs it on a CPU too, which is how the GPU rehearsal exercises the GPU's
code paths without a GPU. `auto` keeps the CPU in fp32: on the CPUs measured so far bf16 was the slower one
(docs/benchmarks.md, "bf16 on the CPU").
"""

from __future__ import annotations

import logging

import torch

from distilflow.errors import DistilflowError

logger = logging.getLogger(__name__)


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise DistilflowError("device cuda was asked for (head.train.device, distill.train.device or glue.device) "
                              "but no CUDA GPU is visible: set it to auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPUs whose bf16 matrix products are not emulated."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def pick_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on a GPU by default, and wherever bf16 is asked for; fp32 on a CPU by default."""
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        logger.warning("precision bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): its matrix products are "
                       "emulated, about 15x slower than fp32 (docs/benchmarks.md); precision auto or fp32 is faster")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def uses_fused_adamw(device: torch.device, autocast_dtype: torch.dtype | None) -> bool:
    """Fused AdamW (one kernel, and no wait for the GPU to skip a non-finite step) on the GPU's path. An fp32
    CPU run keeps the unfused one: its last bits differ, and the committed results were made with it."""
    return device.type == "cuda" or autocast_dtype == torch.bfloat16


def frozen_teacher(teacher: torch.nn.Module, layers: torch.nn.Module, device: torch.device,
                   autocast_dtype: torch.dtype | None) -> torch.nn.Module:
    """The teacher on `device`, without gradients; under bf16 the matrices of its `layers` are stored in bf16.

    It is never trained, so it needs no fp32 master weights, and autocast would otherwise cast every
    weight again at every micro-batch. Embeddings, LayerNorms and the MLM head stay fp32: the projection
    runs in fp32, and a CPU's autocast (unlike CUDA's) does not cast a LayerNorm's weight back to fp32.
    """
    teacher = teacher.to(device).eval().requires_grad_(False)
    if autocast_dtype == torch.bfloat16:
        for module in layers.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
    return teacher
