"""The bench step's lines in bench/gpu/check.sh's summary, read from bench/speed.py's JSON, beside the goals.

    python3 bench/gpu/summary.py /tmp/gpu_check/speed-gpu.json
"""

from __future__ import annotations

import json
import sys


def fmt(value, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def lines(report: dict) -> list[str]:
    shape, r = next(iter(report["shapes"].items()))
    ours, ref = r["sides"]["distilflow"], r["sides"]["reference"]
    peaks = ", ".join(f"{p} {v:.3g} TFLOP/s" for p, v in report["peak_tflops"].items())
    out = [f"  {shape} -> student, micro-batch {r['micro_batch']}, {ours['precision']}, {r['timed_steps_per_side']} "
           f"timed steps per side ({r['rounds']} rounds), one DataLoader with {r['data_workers']} workers; "
           f"measured peak {peaks}",
           f"  tokens/s {ours['median_tokens_per_second']:,.0f} vs reference {ref['median_tokens_per_second']:,.0f} "
           f"= {r['ratio']:.2f}x (goal >= 3x); rounds {', '.join(f'{x:.2f}' for x in r['round_ratios'])}",
           f"  {r['flops_per_step'] / 1e12:.2f} TFLOP a step; MFU {fmt(ours['mfu'], '{:.1%}')} of the measured peak, "
           f"{fmt(ours.get('mfu_h100_spec'), '{:.1%}')} of 989 TFLOP/s (goal 40%); reference "
           f"{fmt(ref.get('mfu_h100_spec', ref['mfu']), '{:.1%}')}",
           f"  peak memory {fmt(ours['peak_memory_gb'], '{:.1f}')} vs {fmt(ref['peak_memory_gb'], '{:.1f}')} GB = "
           f"{fmt(r.get('memory_ratio'), '{:.0%}')} (goal <= 50%); data wait {ours['data_wait_share']:.1%}",
           f"  student inference speed-up b1 {r['inference']['b1']['speedup']:.2f}x, "
           f"b32 {r['inference']['b32']['speedup']:.2f}x (goal >= 1.9x); loss agreement (true fp32) "
           f"{r['loss_agreement']['kd_all_relative_difference']:.1e}"]
    compiled = r.get("compiled")
    if compiled is None:
        out.append("  torch.compile: no round (the bench was cut before it)")
    elif "mfu" in compiled:
        out.append(f"  torch.compile (after the eager rounds): {compiled['median_tokens_per_second']:,.0f} tokens/s = "
                   f"{compiled['ratio_to_reference']:.2f}x the reference, MFU {fmt(compiled.get('mfu_h100_spec'), '{:.1%}')}"
                   f" of 989; compiling took {compiled['compile_and_first_steps_seconds']:.0f} s")
    else:
        out.append(f"  torch.compile: {compiled.get('skipped') or compiled.get('error')}")
    return out


def main() -> int:
    try:
        report = json.loads(open(sys.argv[1]).read())
        print("\n".join(lines(report)))
    except Exception as error:  # the summary says what is missing instead of stopping the check
        print(f"  bench: no result ({type(error).__name__}: {error})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
