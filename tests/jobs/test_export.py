"""The edge export: ONNX fp32 matches PyTorch, int8 is smaller and close, both measured; an export
that drifts past the tolerance is refused and the previous one stays."""

import pytest

from distilflow.errors import DistilflowError
from distilflow.jobs import export
from tests.conftest import run_stages


@pytest.fixture
def params(make_params):
    """The export's default tolerances: a tiny student's masked-token accuracy is near nothing, so int8 keeps it."""
    return make_params(export={"latency": {"batch_sizes": [1, 4], "seq_length": 16, "repeats": 2}})


def test_export_checks_measures_and_refuses_a_drifting_model(params):
    run_stages(params)
    result = export.run(params)
    folder = params.paths.export
    assert {"student.onnx", "student.int8.onnx", "export.json", "export.md"} <= {p.name for p in folder.iterdir()}
    metrics = result.metrics
    assert metrics["onnx_fp32_max_abs_logit_diff"] < 1e-4 and metrics["onnx_fp32_top1_agreement"] == 1.0
    assert metrics["onnx_fp32_accuracy_onnx"] == metrics["onnx_fp32_accuracy_pytorch"]
    assert metrics["onnx_int8_max_abs_logit_diff"] > metrics["onnx_fp32_max_abs_logit_diff"]  # really quantized
    assert metrics["size_mb_student_onnx_int8"] < 0.5 * metrics["size_mb_student_onnx_fp32"]
    assert metrics["onnx_fp32_positions"] > 10
    for key in ("teacher_pytorch", "student_pytorch", "student_onnx_fp32", "student_onnx_int8"):
        assert metrics[f"latency_ms_b4_{key}"] > 0 and metrics[f"latency_iqr_ms_b4_{key}"] >= 0, key
    table = (folder / "export.md").read_text()
    assert "| student (fill-mask) | ONNX int8 (dynamic) |" in table and "vocabulary head" in table
    assert "interquartile range" in table and "threads on" in table
    assert (params.paths.metrics / "export.json").is_file()

    before = (folder / "student.onnx").read_bytes()
    strict = params.model_copy(update={"export": params.export.model_copy(update={"max_abs_logit_diff": 1e-12})})
    with pytest.raises(DistilflowError, match=r"ONNX fp32 export drifts from PyTorch: max \|Δ logit\|"):
        export.run(strict)
    assert (folder / "student.onnx").read_bytes() == before  # nothing replaced
    assert not list(folder.parent.glob("export.tmp*"))
