# haflow: `make standalone` runs everything on this machine; `make check` is the developers'
# quick loop (lint and unit tests, no servers); `make test` runs every test tier (lint and the
# unit tests while the images build, the integration tests in parallel processes, then the
# chaos scenarios of `make chaos` on a docker cluster of those images).
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest-xdist processes for the integration tier: its tests mostly wait on servers, and each
# process has its own databases, ZooKeeper ensemble, Redis server and ports (tests/).
TEST_WORKERS ?= 4

.PHONY: standalone check test lint unit integration services bench clean images cluster cluster-down

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "haflow needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

standalone: $(STAMP)
	$(BIN)/haflow standalone

services:
	bash scripts/test-services.sh
	bash scripts/docker-engine.sh || echo "[services] no Docker engine: the chaos tests skip (and fail under CI=true)"

lint: $(STAMP)
	$(BIN)/ruff check haflow tests benchmarks chaos deploy
	$(BIN)/ruff format --check haflow tests benchmarks chaos deploy
	$(BIN)/mypy haflow tests benchmarks chaos
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q -n 2

check: lint unit

# the tests marked `serial` restart a server the others share, use a fixed path or drive Chromium
# (they run alone, after the rest)
integration: $(STAMP) services
	$(BIN)/pytest tests/integration -q -ra -n $(TEST_WORKERS) -m "not serial" --durations=25
	$(BIN)/pytest tests/integration -q -ra -m serial

# The images build (network and disk, mostly) while lint and the unit tests run; its log is
# printed once both are done. Without Docker (not CI) the compose and chaos tests skip.
test: $(STAMP) services
	@mkdir -p artifacts; \
	$(MAKE) --no-print-directory images > artifacts/images.log 2>&1 & images=$$!; \
	$(MAKE) --no-print-directory check; checked=$$?; \
	wait $$images; built=$$?; echo "== make images (artifacts/images.log)"; cat artifacts/images.log; \
	[ $$checked -eq 0 ] || exit $$checked; [ $$built -eq 0 ] || [ "$$CI" != true ] || exit $$built
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory chaos

# -- the deploy kit on images built here (deploy/local; no registry needed) ----------------------
# `make images`: Debian 12 by debootstrap when no registry answers, then haflow:local from
# deploy/Dockerfile and one image per server from Debian packages (a rebuild is a cache hit).
# `make cluster` / `make cluster-down`: deploy/docker-compose.yml on those images.
# `make cluster HA=1`: the metastore under Patroni and a RabbitMQ cluster (deploy/compose.ha.yml).
COMPOSE_LOCAL := HAFLOW_PATRONI_IMAGE=haflow-local/patroni HAFLOW_RABBITMQ_IMAGE=haflow-local/rabbitmq \
  docker-compose -f deploy/docker-compose.yml -f deploy/compose.local.yml \
  $(if $(HA),-f deploy/compose.ha.yml)

images: $(STAMP)
	bash scripts/docker-engine.sh
	bash deploy/local/build-images.sh

cluster: images
	sh deploy/make-secrets.sh
	$(COMPOSE_LOCAL) up -d

cluster-down:
	$(COMPOSE_LOCAL) down -v

bench: $(STAMP) services
	$(BIN)/python benchmarks/throughput.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# -- chaos suite (haflow.chaos; docs/design.md section 4) ---------------------------------------
# `make chaos`: the CI subset, each scenario on a fresh docker cluster of its own, once or
# NAME:ROUNDS times (the metastore's and the broker's failovers three rounds on one cluster:
# issue 23's proof), CHAOS_LANES scenarios at a time (their clusters have their own names,
# networks and subnets; the runs mostly wait on timeouts, so two fit this 2-core machine: issue
# 35), longest first; each report is printed (its JSON object is the last line, also kept in
# $(CHAOS_OUT)/NAME.json); exits 1 if any fails (scripts/chaos-suite.sh).
# `make chaos-soak`: every scenario in chaos/scenarios/ with --repeat $(SOAK_REPEAT); not in CI.
# worker-kill9 is left out: tests/integration/test_compose_stack.py runs it (its game day) on
# the deployed compose stack in the same `make test`.
CHAOS_CI    ?= metastore-primary-kill:3 metastore-primary-partition:3 broker-node-kill:3 \
               zk-ensemble-down worker-partition-zk worker-partition cron-failover broker-restart \
               leader-partition-zk callback-failover pool-failover webserver-kill leader-sigterm \
               leader-kill9 leader-pause dag-drift
CHAOS_LANES ?= 2
CHAOS_OUT   ?= artifacts/chaos
SOAK_REPEAT ?= 5
CHAOS_ALL   := $(subst _,-,$(patsubst chaos/scenarios/%.py,%,$(wildcard chaos/scenarios/[a-z]*.py)))

.PHONY: chaos chaos-soak

chaos: $(STAMP)
	bash scripts/docker-engine.sh
	bash scripts/chaos-suite.sh $(BIN)/haflow $(CHAOS_OUT) $(CHAOS_LANES) $(CHAOS_CI)

chaos-soak: $(STAMP)
	bash scripts/docker-engine.sh
	bash scripts/chaos-suite.sh $(BIN)/haflow $(CHAOS_OUT) $(CHAOS_LANES) $(addsuffix :$(SOAK_REPEAT),$(CHAOS_ALL))
