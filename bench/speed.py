"""distilflow's training step against the reference DistilBERT step, on the same batches, A/B in one process.

    python bench/speed.py                                  # CPU or the GPU, both shapes, 3 rounds
    python bench/speed.py --shapes bert-base --rounds 5 --micro-batch 64 --out bench/results/speed-gpu.json
    python bench/speed.py --shapes tiny --rounds 1 --steps 1 --device cpu   # a smoke run (tests/test_bench.py)

Shapes: `minilm` (all-MiniLM-L6-v2 -> 3 layers) and `bert-base` (BERT-base's 12 x 768 with random
weights -> 6 layers; speed does not depend on the weights); `tiny` (2 x 32, random) checks the bench itself. Sequences come from the pipeline's
prepared corpus (artifacts/prepared) or, failing that, are packed here from `--corpus` text, and
are grouped into batches of similar length (the reference's default, group_by_size) for both sides.

Each round runs `--steps` optimizer steps of distilflow (its DataLoader, collator, loss and
optimizer: the real Trainer) and then the same steps' batches through the reference step
(bench/reference_step.py), each side training its own copy of the student. distilflow uses its
defaults (triple loss, KD at the masked positions); the reference its own (KD at every real token).
distilflow's DataLoader is made once and serves every round (its worker processes start before the
first timed step); the reference's batches are all padded and masked before any timing, so data
preparation costs it nothing. On a GPU each round times 30 steps per side by default, enough for
the GPU's work, not the launch of a round, to decide the figure.

Reported per shape and side: tokens/s (real tokens; median over rounds), the ratio, MFU, peak GPU
memory (each side measured alone), the share of time distilflow waited for data, and inference
latency of teacher vs student encoders (batch 1 and 32, sequence 128). Also checked: with the same
mask and KD positions, the two losses agree.

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
from datetime import date
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reference_step import ReferenceDistiller  # noqa: E402

from distilflow.base.pretrained import load_masked_lm, resolve  # noqa: E402
from distilflow.config import LossConfig, MaskingConfig, StudentConfig, TrainConfig  # noqa: E402
from distilflow.data.batching import MicroBatch  # noqa: E402
from distilflow.data.masking import IGNORE_INDEX, build_masker  # noqa: E402
from distilflow.data.packing import tokenize_and_pack  # noqa: E402
from distilflow.evaluation.latency import PROTOCOL, forward_call, random_inputs, synchronizer, timed  # noqa: E402
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


class DistilflowSide:
    """The real Trainer: DataLoader + collator (pad, mask), sync-free step, fused AdamW on CUDA."""

    name = "distilflow"

    def __init__(self, teacher, student, tokenizer, data: Dataset, args, device: str, micro_batch: int,
                 total_steps: int):
        config = TrainConfig(max_steps=10**6, micro_batch_size=micro_batch, gradient_accumulation_steps=1,
                             device=device, precision=args.precision, data_workers=args.workers,
                             compile=args.compile, group_by_length=not args.no_grouping,
                             eval_every=10**6, checkpoint_every=10**6, log_every=10**6)
        self.trainer = Trainer(copy.deepcopy(student), DistillationLoss(LossConfig()),
                               build_masker(MaskingConfig(smoothing=0.0), tokenizer), data, data, tokenizer, config,
                               Path("unused"), run_key="bench", teacher=copy.deepcopy(teacher), sequence_length=128)
        # One loader for every round, as in training: its workers start once, before the first timed step.
        self.loader, self.next_step = self.trainer.batches(0, total_steps), 0

    def run(self, first_step: int, steps: int) -> tuple[int, float]:
        """(tokens, seconds waiting for data) of the next `steps` steps of the one loader."""
        assert first_step == self.next_step, "distilflow's loader serves the steps in order"
        tokens, waited = 0, 0.0
        for _ in range(steps):
            batch, seconds = next(self.loader)
            waited += seconds
            self.trainer._optimizer_step(batch)
            tokens += batch.global_tokens
        self.next_step += steps
        return tokens, waited


class ReferenceSide:
    name = "reference"

    def __init__(self, teacher, student, device: torch.device, autocast_dtype, batches: dict[int, list]):
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


def losses_agree(teacher, student, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 device: torch.device) -> dict[str, float]:
    """Same mask and KD positions, fp32, dropout off: distilflow's loss vs the reference's."""
    teacher, student = copy.deepcopy(teacher).to(device).eval(), copy.deepcopy(student).to(device).eval()
    reference = ReferenceDistiller(student, teacher)
    student.eval()
    input_ids, attention_mask, labels = (t.to(device) for t in batch)
    micro = MicroBatch.from_masked(*batch).to(device)
    result = {}
    with torch.no_grad():
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


def bench_shape(shape: str, sequences: list[list[int]], tokenizer, args, device: torch.device) -> dict:
    teacher, student = build_models(shape, tokenizer)
    micro_batch = args.micro_batch or SHAPES[shape][2 if device.type == "cpu" else 3]
    data = Dataset.from_dict({"input_ids": sequences})
    autocast_dtype = torch.bfloat16 if device.type == "cuda" and args.precision != "fp32" else None
    total_steps = 1 + args.rounds * args.steps  # the warm-up step, then the timed rounds

    def make_distilflow(steps: int = total_steps):
        return DistilflowSide(teacher, student, tokenizer, data, args, device.type, micro_batch, steps)

    ours = make_distilflow()
    collator, order = ours.trainer.collator, ours.trainer.order
    # The reference's batches: the same steps, padded and masked here, before anything is timed.
    batches = {step: [reference_batch(m) for m in collator((step, data[order.indices(step)]["input_ids"])).micro_batches]
               for step in range(total_steps)}

    def make_reference():
        return ReferenceSide(teacher, student, device, autocast_dtype, batches)

    agreement = losses_agree(teacher, student, batches[0][0], device)
    memory = {"distilflow": None, "reference": None}
    if device.type == "cuda":
        del ours
        memory = {"distilflow": peak_memory_gb(lambda: make_distilflow(2), device, 2),
                  "reference": peak_memory_gb(make_reference, device, 2)}
        ours = make_distilflow()
    theirs = make_reference()
    sides = [ours, theirs]
    for side in sides:  # warm-up: worker start, lazy initialisation, kernel selection, compilation
        side.run(0, 1)
    synchronize(device)

    rates: dict[str, list[float]] = {side.name: [] for side in sides}
    waits: list[float] = []
    step = 1
    for round_index in range(args.rounds):
        for side in sides if round_index % 2 == 0 else reversed(sides):  # A/B, then B/A
            synchronize(device)
            start = time.perf_counter()
            tokens, waited = side.run(step, args.steps)
            synchronize(device)
            seconds = time.perf_counter() - start
            rates[side.name].append(tokens / seconds)
            if side.name == "distilflow":
                waits.append(waited / seconds)
        step += args.steps
        print(f"  {shape} round {round_index + 1}: " + ", ".join(f"{n} {r[-1]:,.0f} tok/s" for n, r in rates.items()),
              flush=True)

    lengths = [len(s) for s in sequences[: 4096]]
    mean_length = statistics.mean(lengths)
    flops = flops_per_token(teacher, student, mean_length, MaskingConfig().probability)
    peak = args.peak_tflops if device.type == "cuda" else None
    result = {"micro_batch": micro_batch, "steps_per_round": args.steps, "rounds": args.rounds,
              "timed_steps_per_side": args.steps * args.rounds, "data_workers": args.workers,
              "mean_sequence_length": mean_length, "flops_per_token": flops, "loss_agreement": agreement, "sides": {}}
    for name, values in rates.items():
        median = statistics.median(values)
        result["sides"][name] = {
            "tokens_per_second": values, "median_tokens_per_second": median,
            "mfu": median * flops / (peak * 1e12) if peak else None,
            "peak_memory_gb": memory[name],
        }
    result["sides"]["distilflow"]["data_wait_share"] = statistics.median(waits)
    # Each round pairs the two sides on the same steps, close in time: the median of the per-round
    # ratios is robust to the machine's speed drifting between rounds.
    result["round_ratios"] = [a / b for a, b in zip(rates["distilflow"], rates["reference"])]
    result["ratio"] = statistics.median(result["round_ratios"])
    if memory["reference"]:
        result["memory_ratio"] = memory["distilflow"] / memory["reference"]
    result["inference"] = inference_latency(teacher, student, device, args)
    return result


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


def print_table(report: dict) -> None:
    print(f"\n{report['device']}, torch {report['torch']}, {report['date']}")
    header = ("shape", "micro", "distilflow tok/s", "reference tok/s", "ratio", "MFU ours", "MFU ref",
              "peak GB ours", "peak GB ref", "data wait", "loss Δ (KD all / masked)", "student speed-up b1 / b32")
    print(" | ".join(header))
    for shape, r in report["shapes"].items():
        ours, ref = r["sides"]["distilflow"], r["sides"]["reference"]

        def fmt(value, pattern):
            return "–" if value is None else pattern.format(value)

        print(" | ".join([
            shape, str(r["micro_batch"]), f"{ours['median_tokens_per_second']:,.0f}",
            f"{ref['median_tokens_per_second']:,.0f}", f"{r['ratio']:.2f}x", fmt(ours["mfu"], "{:.1%}"),
            fmt(ref["mfu"], "{:.1%}"), fmt(ours["peak_memory_gb"], "{:.2f}"), fmt(ref["peak_memory_gb"], "{:.2f}"),
            f"{ours['data_wait_share']:.1%}",
            f"{r['loss_agreement']['kd_all_relative_difference']:.1e} / "
            f"{r['loss_agreement']['kd_masked_relative_difference']:.1e}",
            f"{r['inference']['b1']['speedup']:.2f}x / {r['inference']['b32']['speedup']:.2f}x",
        ]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--shapes", default="minilm,bert-base")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per side per round (30 on a GPU, 3 on a CPU)")
    parser.add_argument("--micro-batch", type=int, default=None, help="default: per shape and device")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 0 on CPU, 4 on GPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile distilflow's encoders")
    parser.add_argument("--no-grouping", action="store_true",
                        help="random batches instead of the reference's default, batches grouped by length")
    parser.add_argument("--prepared", default="artifacts/prepared")
    parser.add_argument("--corpus", nargs="*", default=[str(ROOT.parent / "shared/data/corpus/brown/brown.txt")])
    parser.add_argument("--max-sequences", type=int, default=20000)
    parser.add_argument("--tokenizer", default=MINILM)
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS,
                        help="the GPU's dense bf16 peak for MFU (H100/H200 SXM: 989)")
    parser.add_argument("--latency-repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out", default=None, help="JSON file (default bench/results/speed-<device>.json)")
    args = parser.parse_args()

    os.environ.setdefault("DISTILFLOW_HUB_MIRROR", str(ROOT.parent / "shared" / "hub"))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          args.device if args.device != "auto" else "cpu")
    if args.workers is None:
        args.workers = 4 if device.type == "cuda" else 0
    if args.steps is None:
        args.steps = 30 if device.type == "cuda" else 3
    tokenizer = AutoTokenizer.from_pretrained(resolve(args.tokenizer))
    sequences = load_sequences(args, tokenizer)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    report = {"device": name, "torch": torch.__version__, "date": date.today().isoformat(), "threads": torch.get_num_threads(),
              "command": " ".join(sys.argv), "sequences": len(sequences), "shapes": {}}
    for shape in args.shapes.split(","):
        print(f"{shape}: {len(sequences)} sequences, {args.rounds} rounds x {args.steps} steps per side", flush=True)
        report["shapes"][shape] = bench_shape(shape, sequences, tokenizer, args, device)
    out = Path(args.out or ROOT / "bench" / "results" / f"speed-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
