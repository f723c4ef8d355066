"""The benchmarks a lent GPU runs once (bench/gpu/check.sh): a refactor must not break them unseen."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import MINILM, ROOT


def test_the_speed_bench_runs_one_step_per_side_on_the_cpu(tmp_path, small_corpus):
    out = tmp_path / "speed.json"
    args = ["--shapes", "tiny", "--device", "cpu", "--rounds", "1", "--steps", "2", "--latency-repeats", "1",
            "--prepared", str(tmp_path / "none"), "--corpus", str(small_corpus / "emma.txt"),
            "--max-sequences", "64", "--tokenizer", str(MINILM), "--out", str(out)]
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    result = report["shapes"]["tiny"]
    assert result["timed_steps_per_side"] == 2
    # a CPU's default: fp32 against the reference (like with like), and its bf16 beside it
    assert {name: side["precision"] for name, side in result["sides"].items()} == {
        "distilflow": "fp32", "reference": "fp32", "distilflow-bf16": "bf16"}
    assert all(side["median_tokens_per_second"] > 0 for side in result["sides"].values())
    # MFU against this CPU's measured matrix-product rate at the side's precision
    assert set(report["peak_tflops"]) == {"fp32", "bf16"} and all(v > 0 for v in report["peak_tflops"].values())
    ours = result["sides"]["distilflow"]
    assert ours["mfu"] == ours["median_tokens_per_second"] * result["flops_per_token"] / (report["peak_tflops"]["fp32"] * 1e12)
    assert result["bf16_vs_fp32"]["speed_ratio"] > 0 and result["bf16_vs_fp32"]["loss_relative_difference"] < 0.05
    # the two steps compute the same loss when given the same mask and KD positions
    assert result["loss_agreement"]["kd_all_relative_difference"] < 1e-5
    assert result["loss_agreement"]["kd_masked_relative_difference"] < 1e-5


def test_the_headline_tables_in_the_docs_are_the_committed_results():
    """docs/results.md §12 is generated from bench/results/headline/*.json (bench/headline.py --report --write):
    a number edited by hand, or a result committed without regenerating the tables, fails here."""
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import DOCS, render

    assert render(ROOT / "bench" / "results" / "headline") in DOCS.read_text()


def test_the_readmes_headline_sentence_is_the_committed_results():
    """The README's retention figures are generated too (the same command): none is typed by hand."""
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import README, render_readme

    assert render_readme(ROOT / "bench" / "results" / "headline") in README.read_text()


def test_the_int8_latency_block_in_the_docs_is_the_committed_results():
    """docs/results.md §13 is generated from bench/results/latency/*.json (bench/int8_latency.py --report --write)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from int8_latency import DOCS, render

    assert render() in DOCS.read_text()


def test_the_teacher_head_block_in_the_docs_is_the_committed_results():
    """docs/results.md §15 is generated from bench/results/teacher-head/*.json (bench/teacher_head.py report --write)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from teacher_head import DOCS, render

    assert render() in DOCS.read_text()


def test_the_readmes_own_task_block_is_the_committed_sst2_result_or_says_it_is_not_measured():
    """README "Your own task" is generated from bench/results/task/sst2.json (bench/task_sst2.py report --write)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from task_sst2 import BEGIN, END, RESULT, render

    block = (ROOT / "README.md").read_text().split(BEGIN, 1)[1].split(END, 1)[0]
    if RESULT.is_file():
        assert BEGIN + block + END == render(json.loads(RESULT.read_text()))
    else:
        assert "Not measured yet" in block and "%" not in block  # no figure without its result file


def test_the_teacher_head_curve_refuses_budgets_that_are_not_numbers_in_one_line():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "teacher_head.py"), "curve", "--steps", "120,lots"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--steps '120,lots'" in done.stderr


def test_the_scaling_table_in_the_docs_is_the_committed_results():
    """docs/scaling.md's table is generated from bench/results/scale/*.json (bench/scale.py --report --write)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from scale import DOCS, render

    assert render() in DOCS.read_text()


def test_the_headline_retention_is_given_both_ways_with_t_intervals_over_seeds(tmp_path):
    """The headline number itself: per seed, seed k's student against seed k's teacher, as the ratio of GLUE
    scores and as the mean of per-task ratios; then mean and 95% t-interval (2 degrees of freedom) over seeds."""
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import final_table, readme_block

    teacher = {"a": [80, 80, 80], "b": [40, 40, 40]}
    student = {"a": [72, 76, 80], "b": [20, 30, 40]}  # GLUE 46, 53, 60 against 60 each seed
    records = [{"phase": "final", "model": model, "task": task, "seed": 42 + i, "score": score / 100, "recipe": "r"}
               for model, table in (("teacher", teacher), ("distilled", student))
               for task, values in table.items() for i, score in enumerate(values)]
    table = "\n".join(final_table(records))
    # ratio of GLUE scores: 76.7, 88.3, 100 -> 88.3 ± t(0.975, 2) · 11.67/√3 = 88.3 ± 29.0
    assert "| ratio of GLUE scores (means over tasks) | 88.3% [59.4, 117.3] |" in table
    # per-task ratios: (90+50)/2, (95+75)/2, (100+100)/2 = 70, 85, 100 -> 85.0 ± 4.303 · 15/√3 = 85.0 ± 37.3
    assert "| mean of per-task ratios (CoLA weighs fully) | 85.0% [47.7, 122.3] |" in table
    assert "| mean of per-task ratios, none counted above 100% | 85.0% [47.7, 122.3] |" in table  # none above
    above = [dict(r, score=1.0) if (r["model"], r["task"], r["seed"]) == ("distilled", "b", 44) else r for r in records]
    # seed 44: (100 + 250)/2 = 175% uncapped, (100 + 100)/2 = 100% capped -> 70, 85, 100 again
    assert "| mean of per-task ratios, none counted above 100% | 85.0% [47.7, 122.3] |" in "\n".join(final_table(above))
    assert "| mean of per-task ratios (CoLA weighs fully) | 110.0%" in "\n".join(final_table(above))
    assert "| a | 80.0 ± 0.0 (r, 3 seeds) | 76.0 ± 4.0 (r, 3 seeds) | 95.0% |" in table
    assert "**60.0 ± 0.0** | **53.0 ± 7.0** | **88.3%** |" in table
    # the README's table quotes the same two figures, and says when seeds are still missing
    block = readme_block(records, ["a", "b"], [42, 43, 44])
    assert block.count("**88.3% [59.4, 117.3]**") == 1 and "**85.0% [47.7, 122.3]**" in block
    assert "(mean over fine-tuning seeds 42, 43, 44 [95% t-interval])" in block and "so far" not in block
    assert "| teacher, GLUE score | 60.0 ± 0.0 |" in block and "| default 3-layer student, GLUE score | 53.0 ± 7.0 |" in block
    # and what it cost: core-seconds as core-hours, and about half of them on 2 cores
    assert "has taken 3.0 core-hours up to its last result (about 2 h on 2 cores" in readme_block(
        records, ["a", "b"], [42, 43, 44], spent=3 * 3600)
    first_seed = [r for r in records if r["seed"] == 42]
    assert "**76.7% (one seed)**" in readme_block(first_seed, ["a", "b"], [42, 43, 44])
    assert "(fine-tuning seed 42 only; 1 of 3 seeds so far)" in readme_block(first_seed, ["a", "b"], [42, 43, 44])
    assert "3 of the 12 dev-set fine-tunings" in readme_block(first_seed[:3], ["a", "b"], [42, 43, 44])


def test_the_ablation_shows_a_students_unfinished_tasks_without_a_glue_score():
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import ablation_table

    records = [{"phase": "final", "model": model, "task": task, "seed": seed, "score": score}
               for model, task, seed, score in (("teacher", "cola", 42, 0.3), ("teacher", "rte", 42, 0.5),
                                                ("0-step", "rte", 42, 0.50), ("0-step", "rte", 43, 0.54))]
    row = next(line for line in ablation_table(records, []) if line.startswith("| 0-step"))
    assert row.endswith("| (not finished) | rte 52.0 ± 2.8 (2) | so far (seeds per task) |")


def test_the_distillation_seed_gets_a_glue_score_only_once_it_has_every_task():
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import distillation_seed_table

    records = [{"phase": "final", "model": model, "task": task, "seed": 42, "score": score}
               for model, task, score in (("distilled", "cola", 0.2), ("distilled", "rte", 0.6),
                                          ("distilled-seed43", "rte", 0.5))]
    rows = distillation_seed_table(records, [])
    assert rows[2].endswith("| 40.0 (1 seed) | cola 20.0, rte 60.0 |")  # (20 + 60) / 2
    assert rows[3].endswith("| – (0 seeds) | – |")  # rte alone is not a GLUE score


def test_the_paired_table_compares_seed_by_seed_and_only_on_seeds_both_students_have_complete():
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import paired_table

    scores = {("distilled", 42): (0.20, 0.60), ("distilled", 43): (0.24, 0.60), ("distilled", 44): (0.22, 0.62),
              ("mlm-only", 42): (0.18, 0.58), ("mlm-only", 43): (0.20, 0.60), ("mlm-only", 44): (0.20, 0.60),
              ("0-step", 42): (0.10, 0.50)}  # 0-step: only one seed, and mlm-only is not its reference here
    records = [{"phase": "final", "model": model, "task": task, "seed": seed, "score": score}
               for (model, seed), pair in scores.items() for task, score in zip(("cola", "rte"), pair)]
    rows = paired_table(records, [("mlm-only", "distilled"), ("0-step", "teacher")])
    assert rows[2] == "| distilled | – | 42: 40.00, 43: 42.00, 44: 42.00 | | |"
    # differences 2, 2, 2 points: no spread, so the interval is the point itself
    assert rows[3] == ("| mlm-only | distilled | 42: 38.00, 43: 40.00, 44: 40.00 | +2.00, +2.00, +2.00 "
                       "| 2.0 points [2.0, 2.0] |")
    assert rows[4] == "| 0-step | teacher | (no complete seed yet) | | |"


def test_the_compute_table_counts_rebuilds_and_takes_a_rebuilt_pin_without_seconds(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import compute_table

    (tmp_path / "rebuilt").mkdir()
    (tmp_path / "pin.json").write_text('{"job": "pin"}')
    (tmp_path / "rebuilt" / "pin.build2.json").write_text('{"job": "pin"}')
    (tmp_path / "rebuilt" / "student.distilled.build2.json").write_text('{"job": "student.distilled", "seconds": 5400}')
    (tmp_path / "rebuilt" / "prepare.build2.json").write_text('{"job": "prepare", "seconds": 900, "threads": 2}')
    assert compute_table(tmp_path)[2:] == ["| rebuilt on a new machine | 2 | 2.0 |",  # 1.5 h + 0.25 h on 2 threads
                                           "| **all** | 2 | 2.0 (about 1 h on 2 cores) |"]


def test_the_report_names_every_build_of_a_students_weights_behind_its_scores():
    """A new machine distils the student again (last bits may differ): scores from two builds say so; a score
    recorded before fingerprints were (no `student_fingerprint`) counts as the first build's."""
    sys.path.insert(0, str(ROOT / "bench"))
    from headline_report import weights_used

    students = [{"job": "student.distilled", "fingerprint": "first"}]
    records = [{"phase": "final", "model": "distilled", "student_fingerprint": None},
               {"phase": "final", "model": "distilled", "student_fingerprint": "second"},
               {"phase": "final", "model": "distilled", "student_fingerprint": "first"},
               {"phase": "selection", "model": "distilled", "student_fingerprint": "third"}]
    assert weights_used(records, students, ["distilled"]) == ["", "Weights behind these scores: distilled 2 builds "
                                                              "(`first`, `second`)."]
    one_build = "Weights behind these scores: distilled 1 build (`first`)."
    assert weights_used(records[:1], students, ["distilled"])[1] == one_build
    assert weights_used(records, students, ["mlm-only"]) == []


GPU_CHECK = ROOT / "bench" / "gpu" / "check.sh"


def test_the_gpu_checks_step_limits_fit_the_calls_budget():
    """Every step's limit plus its kill-after, summed, leaves 60 s of the device call for the rest (the
    preflight, the summaries, the files' way back): a slow step is cut by its own limit, never the call."""
    import re

    script = GPU_CHECK.read_text()
    call_timeout = int(re.search(r"^CALL_TIMEOUT=(\d+)$", script, re.M).group(1))
    kill_after = int(re.search(r"^KILL_AFTER=(\d+)$", script, re.M).group(1))
    limits = [int(limit) for limit in re.findall(r"^step [\w-]+ (\d+) ", script, re.M)]
    assert len(limits) == 4  # environment, bench, pytest-gpu, cli
    assert sum(limits) + kill_after * len(limits) <= call_timeout - 60
    assert f"timeout_s={call_timeout})" in script  # the call the header tells you to make


def test_the_gpu_check_writes_at_most_the_8_files_the_device_returns():
    import re

    script = GPU_CHECK.read_text()
    logs = re.findall(r"^step [\w-]+ \d+ ([\w.-]+) ", script, re.M)
    written = set(re.findall(r'\$OUT/([\w.-]+)', script)) | set(logs)
    assert len(written) <= 8, sorted(written)


def test_a_bundle_for_another_python_is_refused_in_one_line_before_any_step(tmp_path):
    """The preflight reads the wheels' tags against the running Python: a bundle built for another one costs
    seconds here, not a started machine."""
    import zipfile

    other = f"cp3{sys.version_info.minor + 1}"
    wheels = tmp_path / "bundle" / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / f"pyarrow-25.0.1-{other}-{other}-manylinux_2_28_x86_64.whl", "w") as wheel:
        wheel.writestr("pyarrow-25.0.1.dist-info/METADATA", "Name: pyarrow\nVersion: 25.0.1\n")
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(GPU_CHECK)], env={**os.environ, "BUNDLE": str(tmp_path / "bundle"),
                                                          "OUT": str(out), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout.strip().splitlines() == [f"preflight: pyarrow-25.0.1-{other}-{other}-manylinux_2_28_x86_64.whl "
                                                 f"is built for {other}, not Python 3.{sys.version_info.minor}: rebuild "
                                                 "the bundle for it (`bash bench/gpu/bundle.sh`, which builds for the "
                                                 "GPU image's Python 3.12)"]
    assert (out / "summary.txt").read_text() == done.stdout  # and no step ran: nothing else in $OUT
    assert sorted(path.name for path in out.iterdir()) == ["summary.txt"]


def test_the_image_preflight_accepts_cp312_wheels_and_refuses_one_the_images_packages_do_not_satisfy(tmp_path):
    import zipfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "pyarrow-25.0.1-cp312-cp312-manylinux_2_28_x86_64.whl", "w") as wheel:
        wheel.writestr("pyarrow-25.0.1.dist-info/METADATA", "Name: pyarrow\nRequires-Python: >=3.10\n")
    preflight = [sys.executable, str(ROOT / "bench" / "gpu" / "preflight.py"), str(tmp_path), "--image"]
    accepted = subprocess.run(preflight, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    with zipfile.ZipFile(wheels / "datasets-9.0.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("datasets-9.0.0.dist-info/METADATA", "Name: datasets\nRequires-Dist: numpy>=3\n")
    refused = subprocess.run(preflight, capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith("preflight: datasets-9.0.0-py3-none-any.whl needs numpy>=3, and the image has "
                                     "numpy 2.5.2")


def _frontier():
    sys.path.insert(0, str(ROOT / "bench"))
    import frontier

    return frontier


def test_the_frontier_blocks_in_the_docs_and_readme_are_the_committed_results():
    """docs/results.md §16 and the README's lines are generated from bench/results/frontier/*.json."""
    frontier = _frontier()
    block, readme, _ = frontier.render()
    assert block in frontier.DOCS.read_text() and readme in frontier.README.read_text()


def test_the_frontier_puts_a_shape_in_the_table_once_every_task_landed_with_retention_over_seeds(tmp_path, monkeypatch):
    frontier = _frontier()
    monkeypatch.setattr(frontier, "RESULTS", tmp_path)
    tasks = ["cola", "mrpc", "rte", "stsb"]

    def record(shape, task, student, params=8e6):
        export = {"latency_ms_b1_teacher_pytorch": 30.0, "latency_ms_b1_student_pytorch": 10.0,
                  "size_mb_student_onnx_fp32": 32.0, "size_mb_student_onnx_int8": 8.0}
        report = {"parameter_ratio": params / 22.7e6, "models": {"student": {"speed": {"parameters": params}},
                                                                 "teacher": {"speed": {"parameters": 22.7e6}}}}
        return {"shape": shape, "task": task, "experiment": f"frontier-{shape}-{task}", "experiment_commit": "abc",
                "seeds": {"teacher": {"42": 0.6, "43": 0.5, "44": 0.8}, "student": dict(zip(["42", "43", "44"], student))},
                "glue_report": report, "export": export, "distill": {"test_mlm_loss": 5.5},
                "collected": {"date": "2026-12-07T00:00:00+00:00"}}

    for task in tasks:  # 4x256: every task; 4x192: three of four
        (tmp_path / f"4x256.{task}.json").write_text(json.dumps(record("4x256", task, [0.57, 0.45, 0.76])))
    for task in tasks[:3]:
        (tmp_path / f"4x192.{task}.json").write_text(json.dumps(record("4x192", task, [0.3, 0.3, 0.3])))
    block, readme, figures = frontier.render()
    assert set(figures) == {"4x256"} and "| 4x192 | 3 of 4 tasks landed |" in block
    f = figures["4x256"]  # per seed the ratio of GLUE scores: 95%, 90%, 95%
    assert [round(r, 6) for r in f["retention"]] == [95.0, 90.0, 95.0] and f["speedup"] == 3.0
    assert "| 4x256 | 8.0M (35%) | 32.0 / 8.0 | 10.0 / – | – / – | 3.00× | 5.500 |" in block
    assert "4x256 meets it, with 35% of the parameters, 3.00× the speed and 93.3% [86.2, 100.5] retention" in readme
