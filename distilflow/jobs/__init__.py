"""One module per stage of dvc.yaml (and the registry steps after them), each a short recipe:
load what the stage declares as inputs -> act -> log to MLflow -> save what it declares as outputs.
The CLI command of the same name runs it; dvc.yaml's code dependencies are the modules it executes.
training_session.py is what the two training stages (teacher, distill) share."""
