"""The export's tolerances: each limit refuses just past it, in one line naming the setting."""

import pytest

from distilflow.config import ExportConfig
from distilflow.errors import DistilflowError
from distilflow.export.checks import require_fp32_match, require_int8_accuracy, require_int8_glue
from distilflow.export.onnx_export import ExportCheck

LIMITS = ExportConfig(max_abs_logit_diff=1e-3, max_int8_accuracy_drop=0.02, max_int8_glue_drop=0.01)


def _check(pytorch: float, onnx: float) -> ExportCheck:
    return ExportCheck(max_abs_logit_diff=0.5, top1_agreement=0.9, accuracy_pytorch=pytorch, accuracy_onnx=onnx,
                       positions=100)


def test_fp32_must_match_pytorch_to_the_limit():
    require_fp32_match(1e-3, LIMITS, "export")
    with pytest.raises(DistilflowError, match=r"ONNX fp32 rte classifier drifts .* > export.max_abs_logit_diff 0.001: "
                                              r".*nothing was replaced"):
        require_fp32_match(1.1e-3, LIMITS, "rte classifier")


def test_int8_may_lose_at_most_the_set_masked_token_accuracy():
    require_int8_accuracy(_check(0.30, 0.285), LIMITS)  # 1.5 points
    require_int8_accuracy(_check(0.30, 0.35), LIMITS)  # a gain is no loss
    with pytest.raises(DistilflowError, match=r"int8 export loses 2.5% .* > export.max_int8_accuracy_drop 2.0%"):
        require_int8_accuracy(_check(0.30, 0.275), LIMITS)


def test_int8_classifiers_may_lose_at_most_the_set_glue_points():
    require_int8_glue(0.70, 0.695, LIMITS)
    with pytest.raises(DistilflowError, match=r"int8 classifiers lose 1.50 GLUE points \(70.0 -> 68.5\) > "
                                              r"export.max_int8_glue_drop 1"):
        require_int8_glue(0.70, 0.685, LIMITS)
