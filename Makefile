# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
INDEX ?= index
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed
SEEDED := $(INDEX)/.seeded

# A recipe that fails leaves no half-made target behind (a later `make run` redoes it).
.DELETE_ON_ERROR:

.PHONY: install model index run test test-unit bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned (this machine's pip finds the CPU wheel): a bare `torch`
# requirement would pull CUDA packages.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[test,milvus,ray]'
	touch $(STAMP)

model: $(STAMP)
	$(BIN)/bisearch model

install: $(STAMP) model

# The stamp is written only after the ingest succeeded, so a failed first ingest is retried.
$(SEEDED): $(STAMP) $(wildcard seeds/*)
	$(BIN)/bisearch ingest seeds --index $(INDEX)
	touch $(SEEDED)

index: $(SEEDED)

run: install index
	$(BIN)/bisearch serve --index $(INDEX) --host $(HOST) --port $(PORT)

# Debian packages the suite needs (Chromium, CJK font, the Debian PDFs), installed when root/sudo allows.
system-deps:
	bash .ci/system-deps

# Every kind: tests/unit (fakes), tests/integration (model, FAISS, SQLite, Milvus, Ray), tests/e2e (HTTP, Chromium).
test: system-deps install
	CI=1 $(BIN)/python -m pytest -q

# The unit tests alone (fakes only, no model, no server: under a minute).
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Speed as ratios against the bare model and FAISS, plus index scale (tens of minutes on 2 cores).
bench: install
	$(BIN)/python docs/bench/tools/benchmark.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(INDEX)/index.sqlite* $(INDEX)/vectors-*.faiss $(SEEDED)
