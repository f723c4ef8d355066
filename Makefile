# Two commands on a fresh machine:  make run  (the main job, end to end)  and  make test.
VENV ?= .venv
BIN := $(VENV)/bin
# Offline copies of Hub repositories; from_pretrained/load_dataset fall back to the Hub without it.
export DISTILFLOW_HUB_MIRROR ?= ../shared/hub
export TOKENIZERS_PARALLELISM ?= false
# A local run talks to nobody: no Prefect telemetry (it would only fail offline).
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install run test clean

install: $(VENV)/.installed

# Each module's bytecode is written the first time a process imports it, Python's default: with
# PYTHONDONTWRITEBYTECODE (this machine's image sets it) every stage process would compile torch, transformers and
# MLflow again, and compiling all 24k files of the environment at install took ~50 s for the few thousand used.
unexport PYTHONDONTWRITEBYTECODE

# One uv call (the same pins in a fraction of pip's time; a fresh HOME has no cache). uv does not read pip's
# settings, so the wheel folder pip is pointed to ($PIP_FIND_LINKS: this machine's CPU build of torch) is passed on;
# without one, torch comes from PyPI as pip would take it.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q uv==0.13.9
	$(BIN)/uv pip install -q --system-certs --python $(BIN)/python \
		$(foreach links,$(PIP_FIND_LINKS),--find-links $(links)) torch==2.13.0 -e ".[test]"
	touch $@

run: install
	$(BIN)/distilflow pipeline
	@echo ""
	@echo "Where to look:"
	@echo "  report:   artifacts/glue/pipeline_report.md (also a Prefect artifact); metrics: $(BIN)/dvc metrics show"
	@echo "  registry: $(BIN)/distilflow models   (promote: distilflow promote N, rollback: distilflow rollback)"
	@echo "  MLflow:   $(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db   -> http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
	@echo "  Prefect:  $(BIN)/prefect server start   -> http://127.0.0.1:4200 (flow runs, report, progress)"

test: install
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder  # two workers, a file each, longest first (conftest.py)

clean:
	rm -rf artifacts
