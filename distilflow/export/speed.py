"""Size and CPU latency of what the export made, under the one latency protocol (evaluation/latency.py):
the models compared take turns within every repeat, each with its median and interquartile range."""

from __future__ import annotations

from pathlib import Path

import torch

from distilflow.config import LatencyConfig
from distilflow.evaluation.latency import forward_call, random_inputs, size_on_disk_bytes, timed, timing_metrics
from distilflow.export import classifiers
from distilflow.export.onnx_export import feed, model_inputs, onnx_call, session


def fill_mask_speed(teacher, student, folders: dict[str, Path], exports: dict[str, Path], latency: LatencyConfig,
                    threads: int | None) -> dict[str, float]:
    """The fill-mask models (vocabulary head included): teacher and student in PyTorch and the student's exports,
    all four timed in this one process. `folders`: the teacher's and student's model folders (their sizes)."""
    if threads:
        torch.set_num_threads(threads)
    measured = {"threads": float(threads or torch.get_num_threads()),
                **{f"size_mb_{role}_pytorch": size_on_disk_bytes(str(folder)) / 1e6 for role, folder in folders.items()},
                **{f"size_mb_student_{name}": path.stat().st_size / 1e6 for name, path in exports.items()}}
    for batch in latency.batch_sizes:
        inputs = random_inputs(student.config.vocab_size, batch, latency.seq_length)
        calls = {"teacher_pytorch": forward_call(teacher, inputs, "cpu"),
                 "student_pytorch": forward_call(student, inputs, "cpu"),
                 **{f"student_{name}": onnx_call(path, inputs, threads) for name, path in exports.items()}}
        for name, timing in timed(calls, latency.repeats).items():
            measured.update(timing_metrics("latency", f"b{batch}_{name}", timing))
    return measured


def classifier_speed(model, source: Path, exported: Path, latency: LatencyConfig, threads: int | None) -> dict[str, float]:
    """A GLUE classifier in PyTorch fp32 against both of its exports, repeats interleaved."""
    runners = {"onnx_fp32": session(exported / classifiers.FP32, threads),
               "onnx_int8": session(exported / classifiers.INT8, threads)}
    measured = {"classifier_size_mb_pytorch": size_on_disk_bytes(str(source)) / 1e6,
                **{f"classifier_size_mb_{name}": (exported / file).stat().st_size / 1e6
                   for name, file in (("onnx_fp32", classifiers.FP32), ("onnx_int8", classifiers.INT8))}}
    for batch in latency.batch_sizes:
        inputs = feed(random_inputs(model.config.vocab_size, batch, latency.seq_length), model_inputs(model))
        arrays = {name: tensor.numpy() for name, tensor in inputs.items()}
        calls = {"pytorch": forward_call(model, inputs, "cpu"),
                 **{name: (lambda runner=runner, arrays=arrays: runner.run(None, arrays)) for name, runner in runners.items()}}
        for name, timing in timed(calls, latency.repeats).items():
            measured.update(timing_metrics("classifier_latency", f"b{batch}_{name}", timing))
    return measured


def task_speed(models: dict[str, torch.nn.Module], int8: Path, latency: LatencyConfig,
               threads: int | None) -> dict[str, float]:
    """A task's teacher and student classifiers in PyTorch fp32 and the student's int8 file, timed in turn:
    latency_ms_b<batch>_<role>_pytorch and latency_ms_b<batch>_student_onnx_int8 (each model fed its own inputs)."""
    if threads:
        torch.set_num_threads(threads)
    measured = {}
    for batch in latency.batch_sizes:
        calls = {}
        for role, model in models.items():
            inputs = feed(random_inputs(model.config.vocab_size, batch, latency.seq_length), model_inputs(model))
            calls[f"{role}_pytorch"] = forward_call(model, inputs, "cpu")
        student = models["student"]
        calls["student_onnx_int8"] = onnx_call(int8, random_inputs(student.config.vocab_size, batch, latency.seq_length),
                                               threads)
        for name, timing in timed(calls, latency.repeats).items():
            measured.update(timing_metrics("latency", f"b{batch}_{name}", timing))
    return measured
