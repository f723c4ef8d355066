"""The Prefect tasks' retry rule (bad input fails at once; lost processes and failed DVC calls are retried) and
the run report's wall-time table."""

import pytest

from distilflow.errors import DistilflowError
from distilflow.ops.dvc import DvcCommandFailed
from tasks.dvc_stages import StageFailed, artifact_key
from tasks.retries import not_bad_input
from tasks.run_records import wall_time_table


class _FailedState:
    def __init__(self, error: Exception):
        self.error = error

    def result(self):
        raise self.error


@pytest.mark.parametrize("error,retry", [
    (DistilflowError("params.yaml: unknown key"), False),
    (DvcCommandFailed("`dvc push` failed: remote unreachable"), True),
    (StageFailed("stage distill failed (killed)"), True),
])
def test_retry_only_what_a_retry_can_fix(error, retry):
    assert not_bad_input(None, None, _FailedState(error)) is retry


def test_artifact_keys_are_what_prefect_accepts():
    assert artifact_key("progress-glue@rte") == "progress-glue-rte"


def test_the_wall_time_table_says_what_dvc_did_with_each_stage():
    verdicts = {"prepare": "unchanged, skipped", "distill": "restored from DVC's run-cache", "glue@rte": "ran"}
    seconds = {"pin data": 3.2, "prepare": 1.0, "distill": 4.0, "glue@rte": 3725.0}
    table = wall_time_table(verdicts, seconds, 3733.2)
    assert table[2:] == ["| pin data |  | 0:03 |", "| prepare | unchanged, skipped | 0:01 |",
                         "| distill | restored from DVC's run-cache | 0:04 |", "| glue@rte | ran | 1:02:05 |",
                         "| **total** (flow) | | **1:02:13** |"]
