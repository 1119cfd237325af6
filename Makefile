# WasteTrail — developer entry points. `make demo` and `make test` are the quick start.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help bootstrap up down status test demo bench lint schemas clean cluster cluster-down

help:
	@echo "make demo    - install what is missing, start Kafka, PostgreSQL and the services, simulate a province, audit it"
	@echo "make test    - install what is missing and run the whole suite on real Kafka and PostgreSQL"
	@echo "make up      - start Kafka, PostgreSQL and the four services (idempotent)"
	@echo "make down    - stop everything this project started"
	@echo "make status  - what runs"
	@echo "make bench   - benchmarks against bare baselines (JSON under bench/results/)"
	@echo "make lint    - ruff and mypy --strict"
	@echo "make cluster - three local Kafka brokers (RF 3, min ISR 2) and two replicas of every service"
	@echo "make cluster-down - stop them"

bootstrap:
	@bash deploy/local/bootstrap.sh

up: bootstrap
	@$(RUN) wastetrail up

down:
	@if [ -x .venv/bin/wastetrail ]; then .venv/bin/wastetrail down; else bash deploy/local/kafka.sh stop; bash deploy/local/postgres.sh stop; fi

status: bootstrap
	@$(RUN) wastetrail status

test: bootstrap
	@bash deploy/local/kafka.sh start
	@bash deploy/local/postgres.sh start
	@$(RUN) pytest -q -p no:cacheprovider

cluster: bootstrap
	@bash deploy/local/postgres.sh start
	@bash deploy/local/cluster.sh start

cluster-down:
	@bash deploy/local/cluster.sh stop

demo: bootstrap
	@$(RUN) wastetrail demo

bench: bootstrap
	@bash deploy/local/kafka.sh start
	@bash deploy/local/postgres.sh start
	@$(RUN) python -m bench.run

lint: bootstrap
	@$(RUN) ruff check .
	@$(RUN) mypy --strict contracts/src runtime/src services/*/src audit/src src

schemas: bootstrap
	@$(RUN) python -m wastetrail_contracts.schemagen
