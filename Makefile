# One way to install, lint, type-check, test and run; CI and cloudbuild.yaml call these.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: install test test-fast lint typecheck format dev bench lock clean tasks-emulator bundle checkov dev-emulators chaos mutation console

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# checkov's own virtualenv is a prerequisite, so the infra tests run it (offline) too.
test: install .venv-checkov/bin/checkov
	$(BIN)/ruff check shared functions tests bench infra
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --durations=25

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check shared functions tests bench infra
	$(BIN)/ruff format --check shared functions tests bench infra

typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format shared functions tests bench infra
	$(BIN)/ruff check --fix shared functions tests bench infra

dev: install
	$(BIN)/wfe dev --port $(PORT)

# wfe dev in gcp mode on the Firestore, Pub/Sub and Cloud Tasks emulators (docs/gcp.md);
# needs the Google Cloud CLI with its emulators and java.
dev-emulators: install
	$(BIN)/python -m shared.dev.on_emulators --port $(PORT)

bench: install
	$(BIN)/python bench/engine.py --json

# Chaos suite (issue 11): 2,000 executions through wfe dev under SIGKILLs, duplicate
# deliveries, upstream 503s, a full disk and redrives; prints the audit as JSON.
# `make chaos CHAOS_ARGS=--short` is the small run make test does (tests/e2e/test_chaos.py).
chaos: install
	$(BIN)/python bench/chaos.py --json $(CHAOS_ARGS)

# The Cloud Tasks emulator (gcloud-tasks-emulator) pins protobuf<5: it gets a virtual
# environment of its own, .venv-tasks-emulator. The emulator tests make it when missing.
tasks-emulator: install
	$(BIN)/python tests/emulators_gcp.py

# Sampled mutation testing of the engine core (issue 11): a seeded sample of mutmut's
# mutants of shared/engine, each against the engine and unit tests that cover it; prints
# killed/survived/score as JSON. Not part of make test (about 10 min on 2 cores).
# `make mutation MUTATION_ARGS="--ref HEAD --sample 50"` tests a commit, a smaller sample.
mutation: install
	$(BIN)/python bench/mutation.py $(MUTATION_ARGS)

# Re-vendor the web console's libraries (console/package.json, pinned by its lock) into
# shared/api/console/static/vendor with their licenses and a MANIFEST.json; needs Node's
# npm (maintainers only: make dev and make test use the committed copies).
console:
	$(PYTHON) console/vendor.py

# Regenerate the lock file from pyproject.toml (needs uv; installs it into the venv).
lock: install
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -c requirements.lock -o requirements.runtime.lock

# Per-function source bundles (main.py, shared/, pinned requirements.txt) and their zips
# under build/bundles; the container image is the Dockerfile (docs/deploy.md).
bundle: install
	$(BIN)/python infra/bundle.py --out build/bundles

# checkov gets a virtual environment of its own, .venv-checkov: it installs an hcl2
# module that clashes with python-hcl2. It runs offline (--skip-download); the infra
# tests run it too when the environment exists.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION ?= 3.3.30

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)

checkov: $(CHECKOV_VENV)/bin/checkov
	$(CHECKOV_VENV)/bin/checkov --framework terraform --skip-download --quiet --compact -d infra/terraform

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .wfe
	rm -rf build $(CHECKOV_VENV)
