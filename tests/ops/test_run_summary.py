from distilflow.config.load import load_params
from distilflow.ops.run_summary import model_card, run_name
from tests.conftest import ROOT


def _params(*overrides):
    return load_params(ROOT / "params.yaml", list(overrides))


def test_students_that_differ_in_any_loss_term_or_layer_rule_have_different_names():
    variants = [(), ("student.layers=every_other",), ("student.layers=[0,2,4]",), ("distill.loss.alpha_hidden=1",),
                ("distill.loss.alpha_relation=1",), ("student.n_layers=2",), ("student.init=random",)]
    names = [run_name(_params(*variant)) for variant in variants]
    assert len(set(names)) == len(names), names
    assert "hidden=1" in names[3] and "every_other_top" in names[0] and "layers 0,2,4" in names[2]


def test_the_model_card_states_every_nonzero_loss_term():
    from distilflow.evaluation.glue_results import GlueReport, ModelScores

    scores = ModelScores(source="s", fingerprint="f", scores={"rte": 0.6}, metrics={"rte": {"rte_accuracy": 0.6}},
                         glue_score=0.6, speed={"parameters": 1.0})
    report = GlueReport(tasks=["rte"], settings=_params().glue.model_dump(mode="json"), models={"model": scores})
    card = model_card(_params("distill.loss.alpha_attention=0.5", "distill.loss.alpha_cos=0"), report,
                      {"teacher_layers": [1, 3, 5]}, {})
    loss_line = next(line for line in card.splitlines() if line.startswith("- **Loss**"))
    assert "0.5·attention KL" in loss_line and "cosine" not in loss_line and "5·KD (T=2" in loss_line
