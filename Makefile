# The verbs a user types. Every target installs what it needs first (.venv and the pinned CDK CLI).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.12: what .python-version selects under pyenv, else pyenv's own 3.12 install.
PYTHON ?= $(shell for candidate in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	"$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$candidate"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
PORT ?= 8080
# Extra arguments for the CDK CLI, e.g. make deploy ARGS="-c instance_type=ml.g6.4xlarge"
ARGS ?=

# jsii prints a large end-of-life banner on Node 20; the CLI must never wait on the network for
# notices, telemetry or a version check.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := 1

PY_SOURCES := app.py stacks bidistream container/model_server tests bench .github/scripts

.PHONY: help setup local test lint serve synth deploy diff destroy bench clean test-unit test-others

# setup and test run their independent steps at the same time (pip's cache is safe to share); each
# step's output is printed in one piece when it ends, and the first step that fails fails the build.
PARALLEL := $(MAKE) --no-print-directory --jobs=4 --output-sync=target
# pip leaves the .pyc files to the first import: compiling every module of every installed package
# (aws-cdk-lib is 176 MB of Python) was over half of setup's CPU time, most of it for modules that no
# check imports.
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check --no-compile

help:
	@echo "make local    set up, synthesize the stacks, then run the endpoint locally and stream through it"
	@echo "make test     set up and run every check"
	@echo "make serve PORT=8080   run the model container's server in the foreground (as the image's 'serve')"
	@echo "make synth | deploy | diff | destroy   the pinned CDK CLI (ARGS=... passes more options)"
	@echo "make bench    run the benchmarks and print their figures"

LAMBDA_WHEELS := .cache/lambda-wheels

SETUP_STEPS := $(VENV)/.installed node_modules/.installed $(LAMBDA_WHEELS)/.downloaded \
	.venv-deepgram/.installed .venv-pipecat/.installed

setup:
	@$(PARALLEL) $(SETUP_STEPS)

$(VENV)/.installed: requirements.txt requirements-client.txt requirements-dev.txt container/requirements.txt constraints.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required: install it (pyenv install 3.12) or pass PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) -r requirements-dev.txt -c constraints.txt
	$(PY) $(PIP_INSTALL) --no-deps --no-build-isolation -e .
	@touch $@

# Deepgram's SDK and SageMaker transport pin an older aws-sdk-sagemaker-runtime-http2 than ours, so
# the tests that run them (and check our messages against its typed models) get their own virtualenv.
.venv-deepgram/.installed: clients/deepgram/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required: install it (pyenv install 3.12) or pass PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv .venv-deepgram
	.venv-deepgram/bin/python $(PIP_INSTALL) --no-deps -r clients/deepgram/requirements.txt
	@touch $@

# Pipecat (pipecat-ai[sagemaker,deepgram]) pins an even older aws-sdk-sagemaker-runtime-http2 (< 0.10):
# a third virtualenv, for the tests that run its Deepgram-on-SageMaker services (tests/clients).
.venv-pipecat/.installed: clients/pipecat/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required: install it (pyenv install 3.12) or pass PYTHON=/path/to/python3.12"; exit 1; }
	$(PYTHON) -m venv .venv-pipecat
	.venv-pipecat/bin/python $(PIP_INSTALL) --no-deps -r clients/pipecat/requirements.txt
	.venv-pipecat/bin/python -m pip check --disable-pip-version-check
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The smoke-test Lambda's wheels (python3.14, manylinux2014_x86_64), fetched while online so that
# cdk synth bundles the Lambda offline and without Docker.
$(LAMBDA_WHEELS)/.downloaded: stacks/smoke_test/runtime/requirements.txt $(VENV)/.installed
	$(PY) -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.14 \
		--dest $(LAMBDA_WHEELS) -r stacks/smoke_test/runtime/requirements.txt
	@touch $@

local: setup synth
	$(PY) -m bidistream local

# lint, synth and the template tests (tests/unit, on every core: see tests/unit/conftest.py) use the CPU
# and run at the same time. The other tests mostly wait on the processes and audio they stream: they run
# after those, on more workers than cores, the speech-decoding files in two lanes (tests/support/lanes.py).
TEST_WORKERS ?= 4

test:
	@$(PARALLEL) lint synth test-others

test-unit: $(VENV)/.installed node_modules/.installed $(LAMBDA_WHEELS)/.downloaded
	$(PY) -m pytest tests/unit

test-others: $(SETUP_STEPS) test-unit
	$(PY) -m pytest --ignore=tests/unit --numprocesses=$(TEST_WORKERS) -p tests.support.lanes

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(VENV)/bin/mypy app.py stacks bidistream container/model_server .github/scripts
	$(VENV)/bin/hadolint container/Dockerfile

serve: setup
	cd container && PORT=$(PORT) ../$(PY) -m model_server serve

synth: $(VENV)/.installed node_modules/.installed $(LAMBDA_WHEELS)/.downloaded
	$(CDK) synth --quiet $(ARGS)
	@$(PY) -m stacks.summary cdk.out

deploy: setup
	$(CDK) deploy $(ARGS)

diff: setup
	$(CDK) diff $(ARGS)

destroy: setup
	$(CDK) destroy $(ARGS)

bench: setup
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .venv-deepgram node_modules cdk.out .cache .pytest_cache .mypy_cache .ruff_cache
