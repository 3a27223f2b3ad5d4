# tallyflow — the two commands a new user needs:
#   make demo   set everything up, start the local stack, publish a synthetic month, run the job, print invoices
#   make test   set everything up and run the test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TALLYFLOW := $(VENV)/bin/tallyflow
MVN := mvn -q -B
JARS := build/jars
WARM_GATEWAY_JAR := $(JARS)/gateway/tallyflow-warm-gateway.jar
UDF_SOURCES := $(shell find jobs/jvm/src/main -type f) jobs/jvm/pom.xml $(wildcard schemas/*.avsc) schemas/catalog.json \
	schemas/event_limits.json
DEMO_EVENTS ?= 50000
BENCH_EVENTS ?= 2500000
BENCH_RATE ?= 10000
BENCH_SECONDS ?= 60
DEMO_CUSTOMERS ?= 10

SERVE_ADDRESS ?= 127.0.0.1:8900
# The runtime home (settings.py's default when TALLYFLOW_HOME is unset); the demo's operator token lives there.
HOME_DIR := $(or $(TALLYFLOW_HOME),.tallyflow)
DEMO_TOKEN_FILE := $(HOME_DIR)/admin-token
# Debian packages the tests drive: Chromium and ChromeDriver (dashboard tests), promtool (rules),
# openssl (the schema registry test's TLS certificate).
DEBIAN_PACKAGES := chromium chromium-driver prometheus openssl

.PHONY: jvm-archive setup python demo demo-access serve test test-unit test-integration test-jvm lint bench chaos chaos-cluster fuzz \
	clean stack-down

setup: $(VENV)/.installed $(JARS)/.kafka $(JARS)/.flink $(JARS)/flink/tallyflow-udf.jar $(WARM_GATEWAY_JAR) build/.debian \
	jvm-archive

# The gateway JVM's class-data-sharing archive, from one real run (about 50 s, once per set of jars):
# every later run starts 2-3 s sooner. Runs work without it, so a failure here only says so.
jvm-archive: $(VENV)/.installed $(JARS)/.kafka $(JARS)/.flink $(JARS)/flink/tallyflow-udf.jar
	@$(PY) -m tallyflow.tools.jvm_archive || true

build/.debian:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v promtool >/dev/null \
		&& command -v openssl >/dev/null; then :; \
	else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(DEBIAN_PACKAGES); \
	fi
	mkdir -p build && touch $@

# The Python environment alone: what `make test-unit` needs.
python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml jobs/tallyflow/wire/_fastevent.c
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Jar manifests under deploy/jars/ pin every version; Maven resolves them from Maven Central.
$(JARS)/.kafka: deploy/jars/kafka-broker.pom.xml
	rm -rf $(JARS)/kafka && mkdir -p $(JARS)/kafka
	$(MVN) -f $< dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(JARS)/kafka
	touch $@

$(JARS)/.flink: deploy/jars/flink-job.pom.xml
	mkdir -p $(JARS)/flink && find $(JARS)/flink -name 'flink-*.jar' -delete
	$(MVN) -f $< dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(JARS)/flink
	touch $@

$(JARS)/flink/tallyflow-udf.jar: $(UDF_SOURCES)
	mkdir -p $(JARS)/flink
	$(MVN) -f jobs/jvm/pom.xml package -DskipTests
	cp jobs/jvm/target/tallyflow-udf.jar $@

# The warm JVM's main class (jobs/tallyflow/stream/warm_gateway.py), compiled against the PyFlink
# wheel's own jars: it runs on the gateway's classpath, not in a job.
$(WARM_GATEWAY_JAR): $(VENV)/.installed $(shell find jobs/gateway -name '*.java')
	rm -rf build/gateway-classes && mkdir -p build/gateway-classes $(dir $@)
	PYFLINK=$$($(PY) -c 'import os, pyflink; print(os.path.dirname(pyflink.__file__))'); \
		javac --release 17 -nowarn -d build/gateway-classes -cp "$$PYFLINK/opt/*:$$PYFLINK/lib/*" \
		$$(find jobs/gateway -name '*.java')
	jar cf $@ -C build/gateway-classes .

demo: setup
	$(TALLYFLOW) stack up
	$(eval PERIOD := $(shell $(PY) -c 'from tallyflow.core.periods import previous_month; print(previous_month())'))
	$(TALLYFLOW) produce --generate $(DEMO_EVENTS) --customers $(DEMO_CUSTOMERS) \
		--duplicate-rate 0.02 --late-rate 0.01 --period $(PERIOD)
	$(TALLYFLOW) run --catalog deploy/demo/catalog.yaml --bounded
	$(TALLYFLOW) invoice --period $(PERIOD)
	@$(MAKE) -s demo-access

# The demo's last step: the operator token (0600, under TALLYFLOW_HOME), a customer token and where to use them.
demo-access: $(VENV)/.installed
	@$(PY) -m tallyflow.private_files $(DEMO_TOKEN_FILE)
	@TOKEN=$$($(TALLYFLOW) token create --customer cust_001); \
	echo; \
	echo "Serve the demo's store with:  make serve"; \
	echo "then open the dashboard:"; \
	echo "  http://$(SERVE_ADDRESS)/customers/cust_001#token=$$TOKEN   (customer cust_001)"; \
	echo "  http://$(SERVE_ADDRESS)/#token=$$(cat $(DEMO_TOKEN_FILE))   (the operator's view)"; \
	echo "cust_001's API token: $$TOKEN   (curl -H 'Authorization: Bearer $$TOKEN' http://$(SERVE_ADDRESS)/api/customers/cust_001/usage)"; \
	echo "API docs: http://$(SERVE_ADDRESS)/docs   metrics: http://$(SERVE_ADDRESS)/metrics"

# Serves the demo's store: the API, the dashboard and /metrics (Ctrl-C stops).
serve: setup
	TALLYFLOW_ADMIN_TOKEN_FILE=$(DEMO_TOKEN_FILE) $(TALLYFLOW) serve --address $(SERVE_ADDRESS)

# Two workers, each with its own broker and stores; a test file stays on one worker (its module
# fixtures, such as the local Flink cluster, start once). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: setup lint test-jvm
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25 tests

# The JVM operators in Flink's test harnesses, and the shared vectors through the router and decoder.
test-jvm: setup
	$(MVN) -f jobs/jvm/pom.xml test

# The quick tier: only the Python environment (no broker, Maven, Debian packages or JVM archive).
test-unit: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

test-integration: setup
	$(PY) -m pytest -q tests/integration

# Not part of `make test`: publishes BENCH_EVENTS events (several minutes on 2 cores), then
# BENCH_RATE events/s for BENCH_SECONDS to measure the credit drawdown's latency, then prices a
# month of BENCH_INVOICE_EVENTS events for BENCH_INVOICE_CUSTOMERS customers (a throwaway store).
BENCH_INVOICE_EVENTS ?= 10000000
BENCH_INVOICE_CUSTOMERS ?= 10000
# Hostile inputs against produce, catalog validate and the API's parameters (jobs/tallyflow/tools/fuzz.py):
# zero tracebacks, 500s and hangs over FUZZ_CASES generated cases. make test runs a short smoke of it.
FUZZ_CASES ?= 12000
fuzz: setup
	$(TALLYFLOW) stack up
	$(PY) -m tallyflow.tools.fuzz --cases $(FUZZ_CASES)

bench: setup
	$(TALLYFLOW) stack up
	$(TALLYFLOW) bench --events $(BENCH_EVENTS)
	$(TALLYFLOW) bench --latency --rate $(BENCH_RATE) --seconds $(BENCH_SECONDS)
	$(TALLYFLOW) bench --invoices --events $(BENCH_INVOICE_EVENTS) --customers $(BENCH_INVOICE_CUSTOMERS)
	$(TALLYFLOW) bench --invoices --contracts mixed --events $(BENCH_INVOICE_EVENTS) --customers $(BENCH_INVOICE_CUSTOMERS)

# Not part of `make test` (about 15 minutes): CHAOS_EVENTS events through CHAOS_KILLS job kills, a
# loader crash between insert and commit and (local stack) a broker restart, against the exact
# oracle; then the negative control (sinks without transactions) must show duplicates.
# CHAOS_MODE=cluster runs it on a local Flink cluster (`tallyflow cluster up`) instead, where a
# kill is a SIGKILL of the TaskManager running the job (`make chaos-cluster` is the same).
CHAOS_EVENTS ?= 1000000
CHAOS_KILLS ?= 10
CHAOS_MODE ?= local
CLUSTER_URL := http://127.0.0.1:$${TALLYFLOW_FLINK_PORT:-8081}
chaos: setup
	$(TALLYFLOW) stack up
ifeq ($(CHAOS_MODE),cluster)
	$(TALLYFLOW) cluster up
	$(PY) -m tallyflow.tools.chaos --events $(CHAOS_EVENTS) --kills $(CHAOS_KILLS) --cluster $(CLUSTER_URL)
	$(PY) -m tallyflow.tools.chaos --events 300000 --kills 3 --unsafe --cluster $(CLUSTER_URL)
	$(TALLYFLOW) cluster down
else
	$(PY) -m tallyflow.tools.chaos --events $(CHAOS_EVENTS) --kills $(CHAOS_KILLS)
	$(PY) -m tallyflow.tools.chaos --events 300000 --kills 3 --unsafe
endif

chaos-cluster:
	$(MAKE) chaos CHAOS_MODE=cluster

lint: setup
	$(VENV)/bin/ruff check jobs tests
	$(VENV)/bin/ruff format --check jobs tests
	$(VENV)/bin/mypy

stack-down:
	-$(TALLYFLOW) stack down

clean: stack-down
	rm -rf $(VENV) build jobs/jvm/target .tallyflow
