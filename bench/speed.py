"""distilflow's training step against the reference DistilBERT step, on the same batches, A/B in one process.

    python bench/speed.py                                  # CPU or the GPU, both shapes, 3 rounds
    python bench/speed.py --shapes minilm --precision fp32,bf16    # this CPU: fp32 and bf16 side by side
    python bench/speed.py --shapes bert-base --micro-batch 64 --compile-round --out speed-gpu.json   # a GPU
    python bench/speed.py --shapes tiny --rounds 1 --steps 1 --device cpu   # a smoke run (tests/test_bench.py)

Shapes: `minilm` (all-MiniLM-L6-v2 -> 3 layers) and `bert-base` (BERT-base's 12 x 768 with random
weights -> 6 layers; speed does not depend on the weights); `tiny` (2 x 32, random) checks the bench itself.
Sequences come from the pipeline's prepared corpus (artifacts/prepared) or, failing that, are packed here
from `--corpus` text, and are grouped into batches of similar length (the reference's default,
group_by_size) for both sides.

Sides, each training its own copy of the student on the same steps' batches:
- `distilflow`: the real Trainer (DataLoader, collator, loss, optimizer) at the first precision of
  `--precision` (auto: bf16 on a GPU, fp32 then bf16 on a CPU). One DataLoader per side serves every round.
- `distilflow-<precision>`: the same at each further precision (a CPU's bf16 against its fp32).
- `reference`: bench/reference_step.py at the first precision (like with like), its batches padded and
  masked before any timing, so data preparation costs it nothing.
- `distilflow-compiled` (`--compile-round`): torch.compile'd encoders, timed after the eager rounds, not
  interleaved with them, and only if `--budget` leaves `--compile-reserve` seconds for it.
The eager sides take turns in rounds (A/B, then B/A); each ratio is the median of the per-round ratios.

Reported per shape and side: tokens/s (real tokens; median over rounds), FLOPs per step, MFU against
this device's measured matrix-product peak at the side's precision (and, on a GPU, against the H100's
989 TFLOP/s dense bf16), peak GPU memory (each side alone), the share of time distilflow waited for
data, and inference latency of teacher vs student encoders (batch 1 and 32, sequence 128). Checked:
with the same mask and KD positions, the two steps' losses agree in true fp32 (TF32 off); and each
precision's loss on the same batch (dropout off) against the first's.

FLOP count per token (stated, the same for both sides, so MFU ratios equal speed ratios):
3 x F(student) + F(teacher), F(model) = 2 x (weights of the encoder layers' matrices)
+ 4 x layers x mean sequence length x hidden (attention scores and mixing)
+ target share x 2 x (hidden^2 + hidden x vocabulary) (MLM head at the masked positions).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reference_step import ReferenceDistiller  # noqa: E402

from distilflow.base.devices import cpu_has_native_bf16  # noqa: E402
from distilflow.base.pretrained import load_masked_lm, resolve  # noqa: E402
from distilflow.base.provenance import git_commit, git_is_dirty  # noqa: E402
from distilflow.config import LossConfig, MaskingConfig, StudentConfig, TrainConfig  # noqa: E402
from distilflow.data.batching import MicroBatch  # noqa: E402
from distilflow.data.masking import IGNORE_INDEX, build_masker  # noqa: E402
from distilflow.data.packing import tokenize_and_pack  # noqa: E402
from distilflow.evaluation.latency import (  # noqa: E402
    PROTOCOL,
    forward_call,
    machine,
    random_inputs,
    synchronizer,
    timed,
)
from distilflow.train.loop_io import Checkpoints, TrainingData  # noqa: E402
from distilflow.train.losses import DistillationLoss  # noqa: E402
from distilflow.train.student import build_student  # noqa: E402
from distilflow.train.trainer import Trainer  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SHAPES = {  # name: (teacher, student layers, micro-batch on cpu, on cuda)
    "minilm": (MINILM, 3, 32, 64),
    "bert-base": (None, 6, 16, 64),
    "tiny": (None, 1, 4, 4),
}
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
H100_BF16_DENSE_TFLOPS = 989.0
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
START = time.monotonic()


def load_sequences(args, tokenizer) -> list[list[int]]:
    prepared = Path(args.prepared)
    if (prepared / "train").is_dir():
        from datasets import load_from_disk

        train = load_from_disk(str(prepared / "train"))
        return [list(ids) for ids in train.select(range(min(args.max_sequences, len(train))))["input_ids"]]
    text = "\n".join(Path(f).read_text(encoding="utf-8", errors="replace") for f in args.corpus)
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return tokenize_and_pack(paragraphs, tokenizer, 128)[: args.max_sequences]


def build_models(shape: str, tokenizer) -> tuple[torch.nn.Module, torch.nn.Module]:
    teacher_name, student_layers, _, _ = SHAPES[shape]
    torch.manual_seed(0)  # a missing MLM head (MiniLM) or random weights (BERT-base shape): seeded
    if teacher_name:
        teacher = load_masked_lm(teacher_name, role="teacher")[0]
    else:
        teacher = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), **(TINY if shape == "tiny" else {})))
    student, _ = build_student(teacher, StudentConfig(n_layers=student_layers), seed=0)
    return teacher, student


def flops_per_token(teacher, student, mean_length: float, target_share: float) -> float:
    def forward(model) -> float:
        config = model.config
        linear = sum(m.weight.numel() for m in model.base_model.encoder.modules() if isinstance(m, torch.nn.Linear))
        d, vocab = config.hidden_size, config.vocab_size
        return (2 * linear + 4 * config.num_hidden_layers * mean_length * d
                + target_share * 2 * (d * d + d * vocab))

    return 3 * forward(student) + forward(teacher)


def matmul_peak_tflops(device: torch.device, precision: str) -> float:
    """This device's measured matrix-product rate at `precision`, through F.linear (the kernel nn.Linear uses:
    on a CPU without native bf16, a plain bf16 `a @ b` is another, far slower one): the roof MFU is read
    against."""
    size = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(size, size, generator=torch.Generator().manual_seed(i)).to(device, DTYPES[precision])
            for i in (0, 1))
    rates = []
    for repeat in range(4):
        synchronize(device)
        start = time.perf_counter()
        torch.nn.functional.linear(a, b)
        synchronize(device)
        if repeat:  # the first is a warm-up
            rates.append(2 * size**3 / (time.perf_counter() - start) / 1e12)
    return statistics.median(rates)


class DistilflowSide:
    """The real Trainer: DataLoader + collator (pad, mask), the sync-free step, fused AdamW under bf16."""

    def __init__(self, name: str, teacher, student, tokenizer, data: Dataset, args, device: str, micro_batch: int,
                 total_steps: int, precision: str, compile: bool = False):
        config = TrainConfig(max_steps=10**6, micro_batch_size=micro_batch, gradient_accumulation_steps=1,
                             device=device, precision=precision, data_workers=args.workers,
                             compile=compile, group_by_length=not args.no_grouping,
                             eval_every=10**6, checkpoint_every=10**6, log_every=10**6)
        self.name, self.precision = name, precision
        data = TrainingData(data, data, build_masker(MaskingConfig(smoothing=0.0), tokenizer), tokenizer,
                            sequence_length=128)
        self.trainer = Trainer(copy.deepcopy(student), DistillationLoss(LossConfig()), data, config,
                               Checkpoints(Path("unused"), "bench"), teacher=copy.deepcopy(teacher))
        # One loader for every round, as in training: its workers start once, before the first timed step.
        self.loader, self.next_step = self.trainer.batches(0, total_steps), 0

    def run(self, first_step: int, steps: int) -> tuple[int, float]:
        """(tokens, seconds waiting for data) of the next `steps` steps of the one loader."""
        assert first_step == self.next_step, "distilflow's loader serves the steps in order"
        tokens, waited = 0, 0.0
        for _ in range(steps):
            batch, seconds = next(self.loader)
            waited += seconds
            self.trainer.optimizer_step(batch)
            tokens += batch.global_tokens
        self.next_step += steps
        return tokens, waited

    def first_batch_loss(self, batch: MicroBatch) -> float:
        """The loss of one batch at this side's precision, dropout off."""
        trainer = self.trainer
        trainer.model.eval()
        with torch.no_grad(), trainer.autocast():
            loss = trainer.loss_fn(trainer.student_view, trainer.teacher_view, batch.to(trainer.device)).total
        trainer.model.train()
        return float(loss)


class ReferenceSide:
    def __init__(self, teacher, student, device: torch.device, precision: str, batches: dict[int, list]):
        self.name, self.precision = "reference", precision
        autocast_dtype = torch.bfloat16 if precision == "bf16" else None
        self.distiller = ReferenceDistiller(copy.deepcopy(student).to(device), copy.deepcopy(teacher).to(device),
                                            autocast_dtype=autocast_dtype)
        self.device, self.batches = device, batches

    def run(self, first_step: int, steps: int) -> tuple[int, float]:
        tokens = 0
        for step in range(first_step, first_step + steps):
            for input_ids, attention_mask, labels in self.batches[step]:
                self.distiller.step(input_ids.to(self.device), attention_mask.to(self.device), labels.to(self.device))
                tokens += int(attention_mask.sum())
        return tokens, 0.0


def reference_batch(micro: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    labels = torch.full_like(micro.input_ids, IGNORE_INDEX)
    labels.view(-1)[micro.target_index] = micro.target_labels
    return micro.input_ids, micro.attention_mask, labels


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextmanager
def true_fp32():
    """TF32 off for the duration: the Trainer turns it on for the whole process on a GPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def losses_agree(teacher, student, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 device: torch.device) -> dict[str, float]:
    """Same mask and KD positions, true fp32, dropout off: distilflow's loss vs the reference's."""
    teacher, student = copy.deepcopy(teacher).to(device).eval(), copy.deepcopy(student).to(device).eval()
    reference = ReferenceDistiller(student, teacher)
    student.eval()
    input_ids, attention_mask, labels = (t.to(device) for t in batch)
    micro = MicroBatch.from_masked(*batch).to(device)
    result = {}
    with torch.no_grad(), true_fp32():
        for kd, restrict in (("all", False), ("masked", True)):
            reference.restrict_ce_to_mask = restrict
            theirs = float(reference.loss(input_ids, attention_mask, labels))
            ours = float(DistillationLoss(LossConfig(kd_positions=kd))(student, teacher, micro).total)
            result[f"kd_{kd}_relative_difference"] = abs(ours - theirs) / abs(theirs)
    return result


def peak_memory_gb(make_side, device: torch.device, steps: int) -> float | None:
    """Peak GPU memory of one side alone (weights, optimizer state, activations)."""
    if device.type != "cuda":
        return None
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    side = make_side()
    side.run(0, steps)
    synchronize(device)
    peak = torch.cuda.max_memory_allocated() / 2**30
    del side
    gc.collect()
    torch.cuda.empty_cache()
    return peak


def timed_rounds(sides: list, rounds: int, steps: int, device: torch.device, first_step: int, label: str,
                 interleave: bool = True) -> tuple[dict[str, list[float]], list[float]]:
    """tokens/s of each side per round (A/B, then B/A), and distilflow's data-wait shares."""
    rates: dict[str, list[float]] = {side.name: [] for side in sides}
    waits: list[float] = []
    step = first_step
    for round_index in range(rounds):
        for side in sides if round_index % 2 == 0 or not interleave else reversed(sides):
            synchronize(device)
            start = time.perf_counter()
            tokens, waited = side.run(step, steps)
            synchronize(device)
            seconds = time.perf_counter() - start
            rates[side.name].append(tokens / seconds)
            if side.name == "distilflow":
                waits.append(waited / seconds)
        step += steps
        print(f"  {label} round {round_index + 1}: " + ", ".join(f"{n} {r[-1]:,.0f} tok/s" for n, r in rates.items()),
              flush=True)
    return rates, waits


def side_figures(values: list[float], precision: str, flops: float, peaks: dict, device: torch.device,
                 memory: float | None = None) -> dict:
    median = statistics.median(values)
    figures = {"precision": precision, "tokens_per_second": values, "median_tokens_per_second": median,
               "mfu": median * flops / (peaks[precision] * 1e12), "peak_memory_gb": memory}
    if device.type == "cuda":
        figures["mfu_h100_spec"] = median * flops / (H100_BF16_DENSE_TFLOPS * 1e12)
    return figures


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def bench_shape(shape: str, sequences: list[list[int]], tokenizer, args, device: torch.device, peaks: dict,
                save) -> dict:
    teacher, student = build_models(shape, tokenizer)
    micro_batch = args.micro_batch or SHAPES[shape][2 if device.type == "cpu" else 3]
    data = Dataset.from_dict({"input_ids": sequences})
    primary, *others = args.precisions
    total_steps = 1 + args.rounds * args.steps  # the warm-up step, then the timed rounds

    def make_distilflow(precision: str = primary, steps: int = total_steps, name: str = "distilflow", compile=False):
        return DistilflowSide(name, teacher, student, tokenizer, data, args, device.type, micro_batch, steps,
                              precision, compile=compile)

    ours = make_distilflow()
    collator, order = ours.trainer.collator, ours.trainer.order
    # The reference's batches: the same steps, padded and masked here, before anything is timed.
    batches = {step: [reference_batch(m) for m in collator((step, data[order.indices(step)]["input_ids"])).micro_batches]
               for step in range(total_steps)}

    def make_reference():
        return ReferenceSide(teacher, student, device, primary, batches)

    agreement = losses_agree(teacher, student, batches[0][0], device)
    memory = {"distilflow": None, "reference": None}
    if device.type == "cuda":
        del ours
        memory = {"distilflow": peak_memory_gb(lambda: make_distilflow(steps=2), device, 2),
                  "reference": peak_memory_gb(make_reference, device, 2)}
        ours = make_distilflow()
    sides = [ours, make_reference(), *(make_distilflow(p, name=f"distilflow-{p}") for p in others)]
    first_batch = MicroBatch.from_masked(*batches[0][0])
    precision_loss = {side.precision: side.first_batch_loss(first_batch) for side in sides
                      if isinstance(side, DistilflowSide)}
    for side in sides:  # warm-up: worker start, lazy initialisation, kernel selection
        side.run(0, 1)
    synchronize(device)
    rates, waits = timed_rounds(sides, args.rounds, args.steps, device, 1, shape)

    mean_length = statistics.mean(len(s) for s in sequences[:4096])
    flops = flops_per_token(teacher, student, mean_length, MaskingConfig().probability)
    tokens_per_step = statistics.mean(sum(int(mask.sum()) for _, mask, _ in step) for step in batches.values())
    result = {"micro_batch": micro_batch, "steps_per_round": args.steps, "rounds": args.rounds,
              "timed_steps_per_side": args.steps * args.rounds, "data_workers": args.workers,
              "mean_sequence_length": mean_length, "flops_per_token": flops,
              "flops_per_step": flops * tokens_per_step, "loss_agreement": agreement,
              "precision_loss": precision_loss, "sides": {}}
    for side in sides:
        result["sides"][side.name] = side_figures(rates[side.name], side.precision, flops, peaks, device,
                                                  memory.get(side.name))
    result["sides"]["distilflow"]["data_wait_share"] = statistics.median(waits)
    result["round_ratios"] = [a / b for a, b in zip(rates["distilflow"], rates["reference"])]
    result["ratio"] = statistics.median(result["round_ratios"])
    for precision in others:
        result[f"{precision}_vs_{primary}"] = {
            "speed_ratio": median_ratio(rates[f"distilflow-{precision}"], rates["distilflow"]),
            "loss_relative_difference": abs(precision_loss[precision] - precision_loss[primary]) / precision_loss[primary]}
    if memory["reference"]:
        result["memory_ratio"] = memory["distilflow"] / memory["reference"]
    result["inference"] = inference_latency(teacher, student, device, args)
    del sides, ours
    save(result)
    if args.compile_round:
        result["compiled"] = compile_round(make_distilflow, args, device, flops, peaks, rates["reference"])
    return result


def compile_round(make_distilflow, args, device: torch.device, flops: float, peaks: dict,
                  reference_rates: list[float]) -> dict:
    """torch.compile'd encoders at the first precision, after the eager rounds, if the budget leaves room."""
    left = args.budget - (time.monotonic() - START)
    if left < args.compile_reserve:
        return {"skipped": f"{left:.0f} s of the {args.budget:.0f} s budget left, under the {args.compile_reserve:.0f} s "
                           "a compile round is given"}
    try:
        side = make_distilflow(steps=2 + args.rounds * args.steps, name="distilflow-compiled", compile=True)
        start = time.perf_counter()
        side.run(0, 2)  # compilation: a padded batch and, when there is one, a full one
        synchronize(device)
        compile_seconds = time.perf_counter() - start
        rates, _ = timed_rounds([side], args.rounds, args.steps, device, 2, "compiled", interleave=False)
    except Exception as error:  # the eager figures are kept; the failure is reported beside them
        return {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    figures = side_figures(rates[side.name], side.precision, flops, peaks, device)
    return {**figures, "compile_and_first_steps_seconds": compile_seconds,
            "ratio_to_reference": statistics.median(rates[side.name]) / statistics.median(reference_rates),
            "timing": "after the eager rounds, not interleaved with them"}


def inference_latency(teacher, student, device: torch.device, args) -> dict:
    """Bare encoders, random tokens, sequence 128, timed by distilflow's one protocol (interleaved, median and
    IQR; bf16 autocast on a GPU, fp32 on a CPU)."""
    repeats = args.latency_repeats or (30 if device.type == "cuda" else 5)
    result = {"protocol": PROTOCOL, "model": "encoder"}
    encoders = {"teacher": copy.deepcopy(teacher.base_model), "student": copy.deepcopy(student.base_model)}
    for batch_size in (1, 32):
        inputs = random_inputs(teacher.config.vocab_size, batch_size, 128)
        timings = timed({role: forward_call(model, inputs, device.type) for role, model in encoders.items()}, repeats,
                        synchronize=synchronizer(device.type))
        t, s = timings["teacher"], timings["student"]
        result[f"b{batch_size}"] = {"teacher_ms": t.median_ms, "teacher_iqr_ms": t.iqr_ms, "student_ms": s.median_ms,
                                    "student_iqr_ms": s.iqr_ms, "speedup": t.median_ms / s.median_ms}
    return result


def fmt(value, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def print_table(report: dict) -> None:
    print(f"\n{report['device']}, torch {report['torch']}, {report['date']}; measured matrix-product peaks: "
          + ", ".join(f"{p} {v:.3g} TFLOP/s" for p, v in report["peak_tflops"].items()))
    print(" | ".join(("shape", "side", "precision", "tok/s", "MFU", "GFLOP/step", "peak GB")))
    for shape, r in report["shapes"].items():
        sides = {**r["sides"], **({"distilflow-compiled": r["compiled"]} if "mfu" in r.get("compiled", {}) else {})}
        for name, side in sides.items():
            print(" | ".join([shape, name, side["precision"], f"{side['median_tokens_per_second']:,.0f}",
                              fmt(side["mfu"], "{:.1%}"), f"{r['flops_per_step'] / 1e9:,.0f}",
                              fmt(side["peak_memory_gb"], "{:.2f}")]))
        print(f"  {shape}: distilflow / reference {r['ratio']:.2f}x; loss agreement (fp32) "
              f"{r['loss_agreement']['kd_all_relative_difference']:.1e} / "
              f"{r['loss_agreement']['kd_masked_relative_difference']:.1e}; student speed-up b1 / b32 "
              f"{r['inference']['b1']['speedup']:.2f}x / {r['inference']['b32']['speedup']:.2f}x")
        for key, value in r.items():
            if key.endswith("_vs_fp32") or key.endswith("_vs_bf16"):
                print(f"  {shape}: {key.replace('_vs_', ' against ')}: {value['speed_ratio']:.2f}x the speed, "
                      f"loss {value['loss_relative_difference']:.1e} apart")
        if "compiled" in r and "mfu" not in r["compiled"]:
            print(f"  {shape}: compile round: {r['compiled']}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto",
                        help="comma-separated fp32/bf16, the first compared with the reference (auto: bf16 on a GPU, "
                             "fp32,bf16 on a CPU)")
    parser.add_argument("--shapes", default="minilm,bert-base")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per side per round (30 on a GPU, 3 on a CPU)")
    parser.add_argument("--micro-batch", type=int, default=None, help="default: per shape and device")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 0 on CPU, 4 on GPU)")
    parser.add_argument("--compile-round", action="store_true", help="then time torch.compile'd encoders too")
    parser.add_argument("--budget", type=float, default=float("inf"), help="seconds this run may take in all")
    parser.add_argument("--compile-reserve", type=float, default=90.0,
                        help="the compile round starts only with this many seconds of --budget left")
    parser.add_argument("--no-grouping", action="store_true",
                        help="random batches instead of the reference's default, batches grouped by length")
    parser.add_argument("--prepared", default="artifacts/prepared")
    parser.add_argument("--corpus", nargs="*", default=[str(ROOT.parent / "shared/data/corpus/brown/brown.txt")])
    parser.add_argument("--max-sequences", type=int, default=20000)
    parser.add_argument("--tokenizer", default=MINILM)
    parser.add_argument("--latency-repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out", default=None, help="JSON file (default bench/results/speed-<device>.json)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("DISTILFLOW_HUB_MIRROR", str(ROOT.parent / "shared" / "hub"))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          args.device if args.device != "auto" else "cpu")
    if args.precision == "auto":
        args.precision = "bf16" if device.type == "cuda" else "fp32,bf16"
    args.precisions = args.precision.split(",")
    if args.workers is None:
        args.workers = 4 if device.type == "cuda" else 0
    if args.steps is None:
        args.steps = 30 if device.type == "cuda" else 3
    tokenizer = AutoTokenizer.from_pretrained(resolve(args.tokenizer))
    sequences = load_sequences(args, tokenizer)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    report = {"device": name, "torch": torch.__version__, "date": date.today().isoformat(), "threads": torch.get_num_threads(),
              "cpu_native_bf16": cpu_has_native_bf16(), "command": " ".join(sys.argv),
              "commit": git_commit(), "dirty": git_is_dirty(), "machine": machine()["machine"], "sequences": len(sequences),
              "peak_tflops": {p: matmul_peak_tflops(device, p) for p in args.precisions}, "shapes": {}}
    out = Path(args.out or ROOT / "bench" / "results" / f"speed-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(result: dict | None = None) -> None:  # after each shape's eager rounds: a cut run keeps them
        if result is not None:
            report["shapes"][shape] = result
        out.write_text(json.dumps(report, indent=2))

    for shape in args.shapes.split(","):
        print(f"{shape}: {len(sequences)} sequences, {args.rounds} rounds x {args.steps} steps per side", flush=True)
        save(bench_shape(shape, sequences, tokenizer, args, device, report["peak_tflops"], save))
    print_table(report)
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
