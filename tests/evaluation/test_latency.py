"""The one timing protocol: interleaved repeats after a warm-up, median and interquartile range."""

import pytest

from distilflow.evaluation import latency


def test_the_calls_take_turns_within_every_repeat_and_warm_up_is_not_counted():
    order = []
    timings = latency.timed({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=2)
    assert order == ["a", "b"] * 5  # interleaved, 2 warm-up rounds + 3 timed ones
    assert set(timings) == {"a", "b"} and all(t.median_ms >= 0 and t.iqr_ms >= 0 for t in timings.values())


def test_median_and_interquartile_range_of_the_repeats(monkeypatch):
    ticks = iter([0.0, 0.001, 0.0, 0.002, 0.0, 0.003, 0.0, 0.004, 0.0, 0.100])  # 1, 2, 3, 4, 100 ms
    monkeypatch.setattr(latency.time, "perf_counter", lambda: next(ticks))
    timing = latency.timed({"x": lambda: None}, repeats=5, warmup=0)["x"]
    assert timing.median_ms == pytest.approx(3.0)  # an outlier moves the spread, not the median
    assert timing.iqr_ms == pytest.approx(52.0 - 1.5)  # quartiles (exclusive method) 1.5 and 52.0
    assert latency.timing_metrics("latency", "cpu_b1", timing) == {"latency_ms_cpu_b1": pytest.approx(3.0),
                                                                  "latency_iqr_ms_cpu_b1": pytest.approx(50.5)}


def test_the_machine_line_names_cores_threads_and_protocol():
    about = latency.machine()
    assert "cores" in about["machine"] and about["threads"] >= 1 and about["protocol"] == latency.PROTOCOL
