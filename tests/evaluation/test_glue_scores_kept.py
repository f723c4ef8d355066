"""The GLUE tasks and a user's task share one code path (issue 44: the task table, GLUE's fine-tuning and metrics
for both); GLUE's scores must not move for it. The quick run's committed scores (metrics/glue.json, written by
`make run` of the committed code: tests/test_dvc_yaml.py checks the lock) are those measured before the change,
at dcc6598 (a clean-clone `make run` of 0354ad3), to the last digit."""

import json

import pytest

from tests.conftest import ROOT

BEFORE = {"student": {"rte": 0.5234657039711191, "mrpc": 0.7292302253154098},
          "teacher": {"rte": 0.6028880866425993, "mrpc": 0.7716944886062533}}


@pytest.mark.parametrize("role", list(BEFORE))
def test_the_quick_runs_rte_and_mrpc_scores_are_those_before_the_task_table(role):
    scores = json.loads((ROOT / "metrics" / "glue.json").read_text())["models"][role]["scores"]
    assert scores == BEFORE[role]
