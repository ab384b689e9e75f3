# Kubeflow-native MLOps pipeline. `make help` lists the targets.
# Two commands on a fresh machine: `make run` (demo) and `make test`.

.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
TFDV_VENV := .venv-tfdv
DEMO_DATA := data
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c

.PHONY: help setup run lint test test-fast fuzz compile lock clean minio-bin minio-up minio-down bench bench-mixed

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort \
	  | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(TFDV_VENV)/.installed ## Build .venv and .venv-tfdv from the hashed locks (quick when nothing changed)

# A lock change rebuilds the environment from scratch, so it holds exactly the lock.
$(VENV)/.installed: requirements/main.lock requirements/dev.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/main.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/dev.lock
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(TFDV_VENV)/.installed: requirements/tfdv.lock
	rm -rf $(TFDV_VENV)
	$(PYTHON_BOOTSTRAP) -m venv $(TFDV_VENV)
	$(TFDV_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/tfdv.lock
	$(TFDV_VENV)/bin/python tools/tfdv_tool.py --version
	touch $@

lock: ## Re-resolve requirements/*.lock from the .in files (needs uv on PATH)
	cd requirements && for env in main dev tfdv tools; do \
	  uv pip compile $$env.in --generate-hashes --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 -o $$env.lock; done

$(DEMO_DATA)/demo-wine.csv: | $(VENV)/.installed
	$(VENV)/bin/python -m mlops.data.demo $(DEMO_DATA)

run: setup $(DEMO_DATA)/demo-wine.csv ## Demo: the whole pipeline on the wine data set (model demo-wine), registered in ./.mlops
	$(VENV)/bin/mlops run --data $(DEMO_DATA)/demo-wine.csv --target target

lint: setup ## Check the code: ruff (lint, format), mypy on mlops/ (baseline in pyproject.toml), the layer contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy mlops
	$(VENV)/bin/lint-imports

test: setup lint minio-bin tools beam-runtime ## Run every test (unit, TFDV, kfp.local end to end, MinIO, manifests, Spark)
	$(VENV)/bin/pytest

test-fast: setup ## Every test but the whole-pipeline runs (-m "not e2e")
	$(VENV)/bin/pytest -m "not e2e"

FUZZ_EXAMPLES ?= 400
fuzz: setup ## Property-based fuzzing of user input, long (tests/test_fuzz.py; `make test` runs it briefly)
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -p no:cacheprovider tests/test_fuzz.py

compile: setup ## Recompile pipelines/compiled/*.yaml (commit the result)
	$(VENV)/bin/mlops compile

# MinIO is source-only since 2025-10: build the pinned server with Go.
minio-bin: bin/minio ## Build the MinIO server from source into ./bin (skipped when present)
bin/minio:
	GOBIN=$(CURDIR)/bin GOFLAGS=-mod=mod go install github.com/minio/minio@$(MINIO_VERSION)

MINIO_RUNTIME ?= process
minio-up: setup ## Start MinIO on 127.0.0.1:9000 (random credentials; MINIO_RUNTIME=docker: our image); then `source .minio/env`
	$(if $(filter process,$(MINIO_RUNTIME)),$(MAKE) --no-print-directory minio-bin)
	MINIO_RUNTIME=$(MINIO_RUNTIME) $(VENV)/bin/python -m mlops.runners.minio_local up

minio-down: ## Stop the MinIO started by minio-up (its data stays: .minio/data, or the container's volume)
	$(VENV)/bin/python -m mlops.runners.minio_local down

SIZES ?= 2e4 1e5
bench: setup ## Benchmarks side by side: bench/results.{json,md,png} (SIZES="1e5 1e6" for the full run)
	$(VENV)/bin/python bench/run.py --sizes $(SIZES)

MIXED ?= 3e5 1e6
bench-mixed: setup ## The mixed-type table (categories, a datetime, an ID, NAs) at MIXED rows: its section of bench/results.md
	$(VENV)/bin/python bench/run.py --mixed $(MIXED)

clean: ## Remove local run outputs and the embedded store (keeps the environments)
	rm -rf runs .mlops $(DEMO_DATA)

include mk/kind.mk
include mk/cluster.mk
include mk/images.mk
include mk/argo.mk
include mk/gitops.mk
include mk/beam.mk
