"""`distilflow export`: the student (fill-mask) as ONNX fp32 and dynamic int8 in paths.export, each
checked against PyTorch on held-out sequences with fixed masks and refused past params.yaml's
tolerances; sizes and CPU latency of teacher and student in PyTorch and of both exports, side by side
(metrics/export.json, export.md). Then the student's GLUE classifiers (paths.glue/classifiers/<task>)
the same way into paths.export/classifiers/<task>, scored on each task's dev set in every format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from distilflow.base.files import exclusive, replace_folder, write_json, write_text
from distilflow.base.pretrained import load_masked_lm, load_tokenizer, require_length_fits
from distilflow.config import Params
from distilflow.data.batching import pad_batch
from distilflow.data.prepared import load_prepared
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import load_task, parse_task_list
from distilflow.evaluation.glue_results import classifier_folder
from distilflow.evaluation.latency import (
    forward_call,
    machine,
    random_inputs,
    size_on_disk_bytes,
    timed,
    timing_metrics,
)
from distilflow.export import classifiers
from distilflow.export.onnx_export import (
    compare,
    export_onnx,
    feed,
    model_inputs,
    onnx_call,
    quantize_int8,
    session,
)
from distilflow.export.summary import render
from distilflow.ops.tracking import Tracking
from distilflow.train.mlm_metrics import EVAL_MASK_SEED, evaluation_masker

EXPORT_META = "export.json"
FP32, INT8 = "student.onnx", "student.int8.onnx"


@dataclass
class ExportResult:
    folder: Path
    metrics: dict[str, float]


def run(params: Params) -> ExportResult:
    require_length_fits(str(params.paths.student), "student", {"export.latency.seq_length": params.export.latency.seq_length})
    with exclusive(params.paths.export, params.orchestration.lock_wait_seconds), \
            Tracking(params.tracking) as tracking, tracking.run("export", tags={"stage": "export"}):
        student, _ = load_masked_lm(str(params.paths.student), role="student")
        tokenizer = load_tokenizer(str(params.paths.student))
        batches, masked = check_inputs(params, tokenizer)
        metrics: dict[str, float] = {}

        def fill(staging: Path) -> None:
            fp32 = export_onnx(student, batches[0], staging / FP32)
            metrics.update(_checked(compare(fp32, student, batches, masked), "onnx_fp32", params, exact=True))
            int8 = quantize_int8(fp32, staging / INT8)
            metrics.update(_checked(compare(int8, student, batches, masked), "onnx_int8", params, exact=False))
            metrics.update(_measure(params, student, {"onnx_fp32": fp32, "onnx_int8": int8}))
            metrics.update(export_classifiers(params, staging / "classifiers"))
            write_json(staging / EXPORT_META, {"metrics": metrics, "student": str(params.paths.student),
                                               "timing": machine()})
            write_text(staging / "export.md", render(metrics, params))

        replace_folder(params.paths.export, fill, marker=EXPORT_META)
        tracking.log_metrics(metrics)
        tracking.log_artifacts(params.paths.export / "export.md")
    write_json(params.paths.metrics / "export.json", metrics)
    return ExportResult(params.paths.export, metrics)


def check_inputs(params: Params, tokenizer) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
    """Held-out test sequences with the evaluation's fixed masks, in batches of 16, and their labels
    (the original token at masked positions, -100 elsewhere)."""
    prepared = load_prepared(params.paths.prepared)
    if not (prepared.path / "test").exists():
        raise DistilflowError(f"no held-out test split in {prepared.path}: set data.test.files (the export is "
                              "checked on held-out text)")
    test = prepared.split("test")
    count = min(params.export.check_sequences, len(test))
    masker, generator = evaluation_masker(tokenizer), torch.Generator().manual_seed(EVAL_MASK_SEED)
    batches, masked = [], []
    for start in range(0, count, 16):
        ids, attention = pad_batch(test[start:min(start + 16, count)]["input_ids"], tokenizer.pad_token_id)
        batch = masker(ids, attention, generator)
        batches.append({"input_ids": batch.input_ids, "attention_mask": batch.attention_mask})  # one segment
        masked.append(batch.labels)
    return batches, masked


def _checked(check, name: str, params: Params, exact: bool) -> dict[str, float]:
    """fp32 must match PyTorch to rounding; int8 may lose at most export.max_int8_accuracy_drop of the
    held-out masked-token accuracy (its top-1 agreement with PyTorch is reported, not required: where the
    student's own top-1 has a small margin, int8 rounding flips it between near-equal words)."""
    limits = params.export
    if exact and check.max_abs_logit_diff > limits.max_abs_logit_diff:
        raise DistilflowError(f"ONNX fp32 export drifts from PyTorch: max |Δ logit| {check.max_abs_logit_diff:.2e} > "
                              f"export.max_abs_logit_diff {limits.max_abs_logit_diff:g}: report it with your torch and "
                              "onnxruntime versions; nothing was replaced")
    drop = check.accuracy_pytorch - check.accuracy_onnx
    if not exact and drop > limits.max_int8_accuracy_drop:
        raise DistilflowError(f"int8 export loses {drop:.1%} held-out masked-token accuracy ({check.accuracy_pytorch:.1%}"
                              f" -> {check.accuracy_onnx:.1%}) > export.max_int8_accuracy_drop "
                              f"{limits.max_int8_accuracy_drop:.1%}: keep the fp32 export or raise the limit knowingly; "
                              "nothing was replaced")
    return check.as_metrics(name)


def _measure(params: Params, student, exports: dict[str, Path]) -> dict[str, float]:
    """Size and CPU latency of the fill-mask models (vocabulary head included), all in this one process,
    timed by the one protocol (speed.timed: the four take turns within every repeat)."""
    latency, threads = params.export.latency, params.export.threads
    if threads:
        torch.set_num_threads(threads)
    teacher, _ = load_masked_lm(str(params.paths.teacher), role="teacher")
    vocab = student.config.vocab_size
    measured = {"threads": float(threads or torch.get_num_threads()),
                "size_mb_student_pytorch": size_on_disk_bytes(str(params.paths.student)) / 1e6,
                "size_mb_teacher_pytorch": size_on_disk_bytes(str(params.paths.teacher)) / 1e6,
                **{f"size_mb_student_{name}": path.stat().st_size / 1e6 for name, path in exports.items()}}
    for batch in latency.batch_sizes:
        inputs = random_inputs(vocab, batch, latency.seq_length)
        calls = {"teacher_pytorch": forward_call(teacher, inputs, "cpu"),
                 "student_pytorch": forward_call(student, inputs, "cpu"),
                 **{f"student_{name}": onnx_call(path, inputs, threads) for name, path in exports.items()}}
        for name, timing in timed(calls, latency.repeats).items():
            measured.update(timing_metrics("latency", f"b{batch}_{name}", timing))
    return measured


def export_classifiers(params: Params, folder: Path) -> dict[str, float]:
    """Each glue.tasks classifier the GLUE stages kept, exported and scored on its dev set; the int8 GLUE
    score may fall at most export.max_int8_glue_drop below PyTorch's. Latency and size: the first one."""
    from transformers import AutoModelForSequenceClassification

    metrics: dict[str, float] = {}
    scores: dict[str, list[float]] = {"pytorch": [], "onnx_fp32": [], "onnx_int8": []}
    first = None
    for task in parse_task_list(params.glue.tasks)[0]:
        source = classifier_folder(params.paths.glue, task.name)
        if not (source / "model.safetensors").is_file():
            print(f"export: no {task.name} classifier in {source} (run `distilflow glue-task {task.name}`): skipped")
            continue
        model = AutoModelForSequenceClassification.from_pretrained(source)
        evaluation = next(iter(task.evaluations))  # MNLI: matched
        dev = classifiers.dev_set(task, load_task(task, params.glue.source)[evaluation], load_tokenizer(str(source)),
                                  params.glue.max_seq_length)
        task_metrics = classifiers.export_classifier(model, task, dev, folder / task.name)
        if task_metrics["onnx_fp32_max_abs_logit_diff"] > params.export.max_abs_logit_diff:
            raise DistilflowError(f"ONNX fp32 {task.name} classifier drifts from PyTorch: max |Δ logit| "
                                  f"{task_metrics['onnx_fp32_max_abs_logit_diff']:.2e} > export.max_abs_logit_diff "
                                  f"{params.export.max_abs_logit_diff:g}: nothing was replaced")
        metrics.update({f"classifier_{task.name}_{key}": value for key, value in task_metrics.items()})
        for name in scores:
            scores[name].append(task_metrics[f"score_{name}"])
        first = first or (model, source, folder / task.name)
    if first is None:
        return metrics
    for name, values in scores.items():
        metrics[f"classifier_glue_score_{name}"] = sum(values) / len(values)
    drop = metrics["classifier_glue_score_pytorch"] - metrics["classifier_glue_score_onnx_int8"]
    if drop > params.export.max_int8_glue_drop:
        raise DistilflowError(f"int8 classifiers lose {100 * drop:.2f} GLUE points ({100 * metrics['classifier_glue_score_pytorch']:.1f}"
                              f" -> {100 * metrics['classifier_glue_score_onnx_int8']:.1f}) > export.max_int8_glue_drop "
                              f"{100 * params.export.max_int8_glue_drop:g}: keep the fp32 export or raise the limit "
                              "knowingly; nothing was replaced")
    metrics.update(measure_classifier(params, *first))
    return metrics


def measure_classifier(params: Params, model, source: Path, exported: Path) -> dict[str, float]:
    """PyTorch fp32 against both exports, repeats interleaved (each repeat runs all three in turn)."""
    latency, threads = params.export.latency, params.export.threads
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
