# Two entry points: `make demo` and `make test`. Both set up .venv from the lock on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: demo test setup bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock > $(VENV)/pip.log 2>&1 \
	  || (cat $(VENV)/pip.log; exit 1)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . >> $(VENV)/pip.log 2>&1 \
	  || (cat $(VENV)/pip.log; exit 1)
	$(PY) -c "import hubport, harness, torch, transformers, peft, adapters"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 $(PY) -m harness.demo --out $(DEMO_OUT) $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 HF_HUB_DISABLE_XET=1 \
	HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false \
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
