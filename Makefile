# Two commands on a fresh machine:  make run  (the main job, end to end)  and  make test.
VENV ?= .venv
BIN := $(VENV)/bin
# Offline copies of Hub repositories; from_pretrained/load_dataset fall back to the Hub without it.
export DISTILFLOW_HUB_MIRROR ?= ../shared/hub
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install run test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the CPU wheel on CPU machines; CUDA build from PyPI elsewhere
	$(BIN)/pip install -q -e ".[test]"
	touch $@

run: install
	$(BIN)/distilflow distill --resume
	@echo ""
	@echo "Student: artifacts/student (load with AutoModelForMaskedLM / pipeline('fill-mask'))"
	@echo "MLflow:  $(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db   -> http://127.0.0.1:5000"

test: install
	$(BIN)/pytest -q

clean:
	rm -rf artifacts
