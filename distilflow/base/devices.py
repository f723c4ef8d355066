"""Where and in what precision models run: the GPU when there is one (bf16 autocast), else the CPU."""

from __future__ import annotations

import torch

from distilflow.errors import DistilflowError


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise DistilflowError("device cuda was asked for (head.train.device, distill.train.device or glue.device) "
                              "but no CUDA GPU is visible: set it to auto or cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def pick_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPU by default; fp32 on CPU, where bf16 matmuls are slow on most machines."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def frozen_teacher(teacher: torch.nn.Module, device: torch.device, autocast_dtype: torch.dtype | None) -> torch.nn.Module:
    """The teacher on `device`, without gradients; on a GPU under bf16 its layers are stored in bf16.

    It is never trained, so it needs no fp32 master weights, and autocast would otherwise cast every
    weight again at every micro-batch. Embeddings and MLM head stay fp32: the projection runs in fp32.
    """
    teacher = teacher.to(device).eval().requires_grad_(False)
    layers = getattr(teacher.base_model, "encoder", None)
    if device.type == "cuda" and autocast_dtype == torch.bfloat16 and layers is not None:
        layers.to(torch.bfloat16)
    return teacher
