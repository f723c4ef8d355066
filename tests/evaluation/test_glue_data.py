import math
import warnings

import numpy as np
import pytest

from distilflow.config import GlueConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_data import (
    TASKS,
    compute_metrics,
    get_task,
    load_task,
    parse_task_list,
    read_release_tsv,
    select_tasks,
    task_score,
)
from distilflow.evaluation.glue_results import glue_score, ratio
from distilflow.evaluation.glue_runs import summarize
from tests.conftest import HUB, SHARED

HUB_GLUE = str(HUB / "nyu-mll" / "glue")
RELEASE = str(SHARED / "data" / "glue")
# (train, dev) rows of the official GLUE release
SIZES = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "stsb": (5749, 1500),
         "rte": (2490, 277), "wnli": (635, 71)}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_each_task_loads_identically_from_hub_mirror_and_release_folder(name):
    task = get_task(name)
    hub, release = load_task(task, "nyu-mll/glue"), load_task(task, RELEASE)
    for splits in (hub, release):
        assert (len(splits["train"]), len(splits[""])) == SIZES[name]
        assert set(task.text_columns) | {"label"} <= set(splits["train"].column_names)
    for column in (*task.text_columns, "label"):
        hub_values, release_values = hub[""][column], release[""][column]
        if task.is_regression and column == "label":
            assert np.allclose(hub_values, release_values)
        else:
            assert hub_values == release_values, column


def test_release_quirks_bom_quotes_and_headerless_cola():
    mrpc = load_task(get_task("mrpc"), RELEASE)[""]
    assert mrpc[0]["sentence2"].startswith('"The foodservice')  # a quote is text, not a CSV delimiter
    assert set(mrpc["label"]) == {0, 1}
    cola = load_task(get_task("cola"), RELEASE)[""]
    assert cola[0] == {"sentence": "The sailors rode the breeze clear of the rocks.", "label": 1}
    rte = load_task(get_task("rte"), RELEASE)[""]
    assert rte[0]["label"] == 1  # not_entailment, as in the Hub encoding


def test_mnli_qnli_qqp_release_format(tmp_path):
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t" \
             "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
    row = "0\t1\t1e\tgov\t(x)\t(y)\t(x)\t(y)\tA \"quoted\" premise.\tA hypothesis.\tneutral\tneutral\n"
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        (mnli / name).write_text(header + row)
    splits = load_task(get_task("mnli"), str(tmp_path))
    assert set(splits) == {"train", "m", "mm"}
    assert splits["m"][0] == {"premise": 'A "quoted" premise.', "hypothesis": "A hypothesis.", "label": 1}
    (tmp_path / "QNLI").mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / "QNLI" / name).write_text("index\tquestion\tsentence\tlabel\n0\tWhy?\tBecause.\tnot_entailment\n")
    assert load_task(get_task("qnli"), str(tmp_path))[""][0]["label"] == 1
    (tmp_path / "QQP").mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / "QQP" / name).write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tA?\tB?\t1\n")
    assert load_task(get_task("qqp"), str(tmp_path))[""][0] == {"question1": "A?", "question2": "B?", "label": 1}


def test_missing_task_is_an_error_when_named_and_skipped_under_all():
    with pytest.raises(DistilflowError, match=r"'qnli' is not in .*glue"):
        load_task(get_task("qnli"), RELEASE)
    with pytest.raises(DistilflowError, match="'mnli'"):
        load_task(get_task("mnli"), "nyu-mll/glue")
    with pytest.warns(UserWarning, match="qqp"):
        tasks = select_tasks(GlueConfig(source=RELEASE), "all")
    assert [t.name for t in tasks] == ["cola", "sst2", "mrpc", "stsb", "rte", "wnli"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [t.name for t in select_tasks(GlueConfig(source=HUB_GLUE), "rte,mrpc")] == ["rte", "mrpc"]


def test_unknown_task_names_the_choices():
    with pytest.raises(DistilflowError, match="unknown GLUE task 'mnrpc'.*cola"):
        parse_task_list("rte,mnrpc")
    assert len(parse_task_list("all")[0]) == 9 == len(TASKS)


def test_metrics_against_hand_computed_values():
    labels = np.array([1, 1, 1, 0, 0, 1])
    logits = np.array([[0, 1], [0, 1], [1, 0], [1, 0], [0, 1], [0, 1]])  # predicts 1,1,0,0,1,1
    # TP=3 FP=1 FN=1 TN=1: accuracy 4/6, F1 = 2*3/(2*3+1+1) = 0.75,
    # MCC = (3*1 - 1*1) / sqrt(4*4*2*2) = 2/8 = 0.25
    assert compute_metrics(get_task("mrpc"), logits, labels) == pytest.approx({"accuracy": 4 / 6, "f1": 0.75})
    assert compute_metrics(get_task("cola"), logits, labels) == pytest.approx({"matthews_correlation": 0.25})
    assert compute_metrics(get_task("rte"), logits, labels) == pytest.approx({"accuracy": 4 / 6})
    scores, gold = np.array([[1.0], [2.0], [3.0], [5.0]]), np.array([1.0, 3.0, 2.0, 4.0])
    # Pearson by hand: means 2.75 / 2.5; deviations (-1.75,-.75,.25,2.25) and (-1.5,.5,-.5,1.5):
    # sum of products 5.5, sums of squares 8.75 and 5 -> 5.5 / sqrt(43.75) = 0.8315; Spearman 1234 vs 1324 -> 0.8
    metrics = compute_metrics(get_task("stsb"), scores, gold)
    assert metrics["pearson"] == pytest.approx(5.5 / math.sqrt(8.75 * 5))
    assert metrics["spearman"] == pytest.approx(0.8)


def test_glue_score_is_macro_average_with_two_metric_tasks_averaged():
    assert task_score(get_task("mrpc"), {"": {"f1": 0.9, "accuracy": 0.8}}) == pytest.approx(0.85)
    assert task_score(get_task("mnli"), {"m": {"accuracy": 0.8}, "mm": {"accuracy": 0.7}}) == pytest.approx(0.75)
    assert glue_score({"mrpc": 0.85, "rte": 0.65}) == pytest.approx(0.75)
    assert ratio(0.6, 0.65) == pytest.approx(0.6 / 0.65)
    assert ratio(0.1, 0.0) is None and ratio(0.1, -0.05) is None  # no retention against a score of 0 or below


def test_median_over_seeds_and_lr_selected_on_dev():
    task = get_task("rte")
    runs = [{"learning_rate": lr, "seed": s, "metrics": {"": {"accuracy": acc}}, "score": acc}
            for lr, s, acc in [(2e-5, 1, 0.60), (2e-5, 2, 0.70), (2e-5, 3, 0.62),
                               (5e-5, 1, 0.66), (5e-5, 2, 0.50), (5e-5, 3, 0.64)]]
    result = summarize(task, runs)
    assert result.learning_rate == 5e-5 and result.score == pytest.approx(0.64)
    assert result.flat_metrics() == {"rte_accuracy": pytest.approx(0.64)}


def test_a_damaged_release_file_is_one_line_naming_the_file_and_line(tmp_path):
    (tmp_path / "RTE").mkdir()
    dev = tmp_path / "RTE" / "dev.tsv"
    dev.write_text("index\tsentence1\tlabel\n0\tA.\tentailment\n")
    with pytest.raises(DistilflowError, match=r"dev.tsv' has no column 'sentence2' .*replace it"):
        read_release_tsv(get_task("rte"), dev)
    dev.write_text("index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tC.\tD.\tmaybe\n")
    with pytest.raises(DistilflowError, match=r"dev.tsv' line 3: unknown label 'maybe' \(expected entailment"):
        read_release_tsv(get_task("rte"), dev)


@pytest.mark.parametrize("name", ["rte", "stsb"])
def test_the_held_out_slice_is_seeded_stratified_and_never_trained_on(name):
    from distilflow.evaluation.glue_data import SELECTION, held_out_splits

    task = get_task(name)
    train = load_task(task, str(HUB / "nyu-mll" / "glue"))["train"]
    splits = held_out_splits(task, train, 0.1, seed=0)
    kept, held = splits["train"], splits[SELECTION]
    assert len(held) == round(0.1 * len(train)) and len(kept) + len(held) == len(train)
    assert not set(kept["idx"]) & set(held["idx"])  # disjoint rows
    assert held["idx"] == sorted(held["idx"])  # original order kept
    labels, held_labels = np.asarray(train["label"]), np.asarray(held["label"])
    if task.is_regression:  # every quintile of the score is in the slice
        assert abs(np.median(held_labels) - np.median(labels)) < 0.2
    else:  # the label mix of the whole set, to within a row
        assert abs(held_labels.mean() - labels.mean()) < 1 / len(held)
    assert held_out_splits(task, train, 0.1, seed=0)[SELECTION]["idx"] == held["idx"]
    assert held_out_splits(task, train, 0.1, seed=1)[SELECTION]["idx"] != held["idx"]


def test_with_a_selection_slice_the_dev_set_is_still_scored_and_reported_but_never_chooses(tmp_path):
    """A sweep ranks students on the held-out slice; the dev score is the one reported, and is never used to
    choose (here: the learning rate that is best on the slice wins, although the other is better on dev)."""
    from distilflow.evaluation.glue_runs import summarize

    task = get_task("rte")
    runs = [{"learning_rate": lr, "seed": 1, "score": dev, "selection_score": held,
             "metrics": {"": {"accuracy": dev}, "selection": {"accuracy": held}}}
            for lr, dev, held in ((1e-4, 0.70, 0.55), (3e-4, 0.60, 0.65))]
    result = summarize(task, runs)
    assert result.learning_rate == 3e-4 and result.score == 0.60 and result.selection_score == 0.65
