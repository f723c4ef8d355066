"""The Prefect tasks' retry rule: bad input fails at once; lost processes and failed DVC calls are retried."""

import pytest

from distilflow.errors import DistilflowError
from distilflow.ops.dvc import DvcCommandFailed
from tasks.dvc_stages import StageFailed, artifact_key
from tasks.retries import not_bad_input


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
