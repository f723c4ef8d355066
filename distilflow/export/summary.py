"""The export's Markdown: sizes and latencies of the fill-mask model and the GLUE classifiers in each format,
and the checks against PyTorch (the figures export_metrics measured, as metrics/export.json holds them)."""

from __future__ import annotations

from distilflow.config import Params
from distilflow.evaluation.glue_data import parse_task_list
from distilflow.evaluation.latency import CLASSIFIER, FILL_MASK, MODEL_KINDS, machine


def render(metrics: dict[str, float], params: Params) -> str:
    latency = params.export.latency
    names = [("teacher", "PyTorch fp32", "teacher_pytorch"), ("student", "PyTorch fp32", "student_pytorch"),
             ("student", "ONNX fp32", "student_onnx_fp32"), ("student", "ONNX int8 (dynamic)", "student_onnx_int8")]
    lines = [f"# Edge export (CPU, {int(metrics['threads'])} threads, sequence {latency.seq_length})", "",
             timing_line(latency.repeats), "",
             f"Latency of {MODEL_KINDS[FILL_MASK]}: the model a fill-mask server runs.", "",
             "| model | format | size MB | " + " | ".join(f"latency b{b} ms" for b in latency.batch_sizes) + " |",
             "|---" * (3 + len(latency.batch_sizes)) + "|"]
    for model, label, key in names:
        size = metrics[f"size_mb_{key}"]
        lines.append(f"| {model} ({FILL_MASK}) | {label} | {size:.1f} | " + " | ".join(
            _latency(metrics, "latency", f"b{b}_{key}") for b in latency.batch_sizes) + " |")
    lines += ["", f"Checks on {int(metrics['onnx_fp32_positions'])} masked held-out tokens: ONNX fp32 max |Δ logit| "
              f"{metrics['onnx_fp32_max_abs_logit_diff']:.1e}; int8 top-1 agreement with PyTorch "
              f"{metrics['onnx_int8_top1_agreement']:.1%} (max |Δ logit| {metrics['onnx_int8_max_abs_logit_diff']:.2f}); "
              f"masked-token accuracy PyTorch {metrics['onnx_int8_accuracy_pytorch']:.1%}, int8 "
              f"{metrics['onnx_int8_accuracy_onnx']:.1%}."]
    if "classifier_glue_score_pytorch" in metrics:
        lines += ["", *render_classifiers(metrics, params)]
    return "\n".join(lines) + "\n"


def render_classifiers(metrics: dict[str, float], params: Params) -> list[str]:
    latency = params.export.latency
    tasks = [task.name for task in parse_task_list(params.glue.tasks)[0] if f"classifier_{task.name}_score_pytorch" in metrics]
    formats = [("PyTorch fp32", "pytorch"), ("ONNX fp32", "onnx_fp32"), ("ONNX int8 (dynamic)", "onnx_int8")]
    lines = ["## The student's GLUE classifiers", "", f"Latency of {MODEL_KINDS[CLASSIFIER]} ({CLASSIFIER}).", "",
             "| format | size MB | " + " | ".join(f"latency b{b} ms" for b in latency.batch_sizes) + " | "
             + " | ".join(tasks) + " | GLUE score |",
             "|---" * (3 + len(latency.batch_sizes) + len(tasks)) + "|"]
    for label, key in formats:
        lines.append(f"| {label} | {metrics[f'classifier_size_mb_{key}']:.1f} | "
                     + " | ".join(_latency(metrics, "classifier_latency", f"b{b}_{key}") for b in latency.batch_sizes)
                     + " | " + " | ".join(f"{100 * metrics[f'classifier_{task}_score_{key}']:.1f}" for task in tasks)
                     + f" | {100 * metrics[f'classifier_glue_score_{key}']:.1f} |")
    speedup = metrics["classifier_latency_ms_b1_pytorch"] / metrics["classifier_latency_ms_b1_onnx_int8"]
    agreement = ", ".join(f"{task} {metrics[f'classifier_{task}_onnx_int8_label_agreement']:.1%}" for task in tasks
                          if f"classifier_{task}_onnx_int8_label_agreement" in metrics)
    worst = max(metrics[f"classifier_{task}_onnx_fp32_max_abs_logit_diff"] for task in tasks)
    return lines + ["", f"Dev sets, first seed's classifier of each GLUE stage. Size and latency: the {tasks[0]} classifier "
                f"(the others differ only in the last layer), repeats interleaved. int8 vs PyTorch fp32 at batch 1: "
                f"{speedup:.2f}× faster, {metrics['classifier_size_mb_onnx_int8'] / metrics['classifier_size_mb_pytorch']:.2f}"
                f" of the size. ONNX fp32 max |Δ logit| {worst:.1e}; int8 label agreement with PyTorch: {agreement or '–'}."]


def timing_line(repeats: int) -> str:
    about = machine()
    return (f"Latency: median ± interquartile range of {repeats} repeats after a warm-up, the models taking turns "
            f"within each repeat (protocol {about['protocol']}), {about['threads']} threads on {about['machine']}.")


def _latency(metrics: dict[str, float], prefix: str, suffix: str) -> str:
    spread = metrics.get(f"{prefix}_iqr_ms_{suffix}")
    median = metrics[f"{prefix}_ms_{suffix}"]
    return f"{median:.1f}" if spread is None else f"{median:.1f} ± {spread:.1f}"
