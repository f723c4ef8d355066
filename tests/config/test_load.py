import re
from pathlib import Path

import pytest

from distilflow.base.provenance import flatten
from distilflow.config import Params
from distilflow.config.load import apply_override, load_params
from distilflow.errors import DistilflowError

ROOT = Path(__file__).resolve().parents[2]
PARAMS_FILE = ROOT / "params.yaml"


def test_project_params_file_parses_with_documented_defaults():
    params = load_params(ROOT / "params.yaml")
    assert params.teacher.model == str(params.versioning.sources["teacher"].path)  # the DVC-pinned copy
    assert params.versioning.sources["teacher"].url.endswith("sentence-transformers/all-MiniLM-L6-v2")
    assert params.student.n_layers is None  # half the teacher's layers
    assert params.masking.probability == 0.15
    assert (params.distill.loss.alpha_ce, params.distill.loss.alpha_mlm, params.distill.loss.alpha_cos) == (5, 2, 1)
    assert params.tracking.tracking_uri == "sqlite:///mlruns/mlflow.db"


# Where the inputs are (the DVC-pinned copies in the checkout), not how a model is made: the code's defaults
# name the public originals.
LOCATIONS = {"teacher.model", "data.train", "data.test", "glue.source", "versioning.sources"}


def _differences(code: dict, file: dict, prefix: str = "") -> list[str]:
    found = []
    for key in code.keys() | file.keys():
        name = f"{prefix}{key}"
        if name in LOCATIONS:
            continue
        if isinstance(code.get(key), dict) and isinstance(file.get(key), dict):
            found += _differences(code[key], file[key], f"{name}.")
        elif code.get(key) != file.get(key):
            found.append(f"{name}: code {code.get(key)!r}, params.yaml {file.get(key)!r}")
    return found


def test_the_codes_defaults_are_params_yamls():
    """Issue 24: `StudentConfig()` said every_other while params.yaml said every_other_top; a value left out of a
    params file must mean what params.yaml says."""
    file = load_params(PARAMS_FILE)
    code = Params(data={"train": file.data.train})  # the one section without a default: the corpus
    assert _differences(code.model_dump(mode="json"), file.model_dump(mode="json")) == []


def test_override_reaches_nested_key_and_is_typed():
    params = load_params(ROOT / "params.yaml", ["distill.loss.temperature=4", "student.layers=[0, 5]"])
    assert params.distill.loss.temperature == 4.0
    assert params.student.layers == [0, 5]


def test_unknown_key_is_rejected_by_name(tmp_path):
    with pytest.raises(DistilflowError, match=r"unknown key 'distill.loss.temprature'"):
        load_params(ROOT / "params.yaml", ["distill.loss.temprature=4"])


def test_bad_value_names_the_key():
    with pytest.raises(DistilflowError, match=r"'masking.probability'"):
        load_params(ROOT / "params.yaml", ["masking.probability=1.5"])


def test_invalid_yaml_and_missing_file_are_one_line_errors(tmp_path):
    broken = tmp_path / "params.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(DistilflowError, match="not valid YAML"):
        load_params(broken)
    with pytest.raises(DistilflowError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(DistilflowError, match="is not UTF-8 text"):
        load_params(binary)


def test_malformed_override_explains_the_form():
    with pytest.raises(DistilflowError, match="section.key=value"):
        apply_override({}, "temperature")


def test_an_override_whose_value_is_not_yaml_is_one_line():
    with pytest.raises(DistilflowError, match=r"override 'glue.seeds=\[1, 2': its value is not valid YAML \(.*\): quote "
                                              r"it, or close its brackets"):
        load_params(ROOT / "params.yaml", ["glue.seeds=[1, 2"])


def test_masking_fractions_must_leave_room():
    with pytest.raises(Exception, match="mask_fraction"):
        Params.model_validate({"data": {"train": {"files": ["x"]}}, "masking": {"mask_fraction": 0.95}})


def test_corpus_source_needs_exactly_one_kind():
    with pytest.raises(Exception, match="either 'files'"):
        Params.model_validate({"data": {"train": {"files": ["x"], "dataset": "y"}}})


def test_flatten_gives_one_key_per_hyperparameter():
    flat = flatten(load_params(ROOT / "params.yaml").model_dump(mode="json"))
    assert flat["distill.loss.temperature"] == 2.0
    assert flat["head.train.max_steps"] == 120 and flat["head.train.learning_rate"] == 0.0003
    assert not any(isinstance(value, dict) for value in flat.values())


def test_paper_recipe_parses():
    params = load_params(ROOT / "params" / "paper.yaml")
    assert (params.student.n_layers, params.student.layers) == (6, "spread")
    assert len(params.glue.tasks) == 9 and params.versioning.sources["teacher"].hub == "google-bert/bert-base-uncased"


@pytest.mark.parametrize("override", ["distill.loss.temperature=.inf", "distill.train.learning_rate=.inf",
                                      "distill.loss.alpha_ce=.nan"])
def test_infinite_or_nan_hyperparameters_are_refused(override):
    with pytest.raises(DistilflowError, match="finite number"):
        load_params(ROOT / "params.yaml", [override])


def test_distillation_may_take_zero_steps_a_head_may_not():
    """0 distillation steps is the copied-layers baseline; an MLM head trained 0 steps would be a random one."""
    assert load_params(ROOT / "params.yaml", ["distill.train.max_steps=0"]).distill.train.max_steps == 0
    with pytest.raises(DistilflowError, match="head.train.max_steps must be at least 1"):
        load_params(ROOT / "params.yaml", ["head.train.max_steps=0"])
    assert not load_params(ROOT / "params.yaml", ["head.train.max_steps=0", "head.enabled=false"]).head.enabled


def test_a_section_given_twice_is_refused_naming_both_lines(tmp_path):
    """Issue 23: a second `distill:` block appended silently replaced the first (max_steps 6 -> 200)."""
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_FILE.read_text() + "\ndistill:\n  train:\n    max_steps: 6\n")
    first = 1 + PARAMS_FILE.read_text().splitlines().index("distill:")
    last = len(path.read_text().splitlines()) - 2
    with pytest.raises(DistilflowError, match=rf"'distill' is given twice, on lines {first} and {last}: keep one"):
        load_params(path)
    path.write_text("data:\n  train: {files: [a.txt]}\n  max_seq_length: 64\n  max_seq_length: 128\n")  # at any depth
    with pytest.raises(DistilflowError, match="'max_seq_length' is given twice, on lines 3 and 4"):
        load_params(path)


@pytest.mark.parametrize("override, words", [
    ("registry.model_name=it's", "'registry.model_name' = \"it's\": use letters, digits"),
    ("registry.promotion.latency=gpu", "give cpu_b<batch size> or cuda_b<batch size>"),
    ("glue.learning_rates=[-1e-4]", "'glue.learning_rates.0': Input should be greater than 0"),
    ("data.min_seq_length=200", "min_seq_length 200 is above max_seq_length 128"),
    ("export.latency.batch_sizes=[0]", "'export.latency.batch_sizes.0': Input should be greater than or equal to 1"),
    ("glue.tasks=[]", "'glue.tasks': List should have at least 1 item"),
])
def test_values_out_of_range_are_refused_before_any_work(override, words):
    with pytest.raises(DistilflowError, match=re.escape(words)):
        load_params(PARAMS_FILE, [override])
