"""One module per stage of dvc.yaml (and the registry steps after them), each a short recipe:
load what the stage declares as inputs -> act -> log to MLflow -> save what it declares as outputs.
The CLI command of the same name runs it; dvc.yaml's code dependencies are the modules it executes.
What several jobs share sits a floor below, in distilflow/steps/: a job never imports another job."""
