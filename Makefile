# The menu. `make help` lists the targets; every tool is installed, pinned, on first use.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK ?= rust-websocket-chat
STAGE ?= dev
PORT ?= 3001
DYNAMODB_PORT ?= 4567
ISSUER_PORT ?= 9001
SQS_PORT ?= 4576
# The gateway's invocations in flight per function under `make dev-lambda` (--lambda-concurrency):
# the rest wait in the gateway, so `cargo lambda watch` never holds more than this many per function.
LAMBDA_CONCURRENCY ?= 8
ISSUER := http://127.0.0.1:$(ISSUER_PORT)
TABLE ?= chat-connections
# The Lambda functions: a cargo binary each, a file of crates/functions/src/bin, as the route
# table in crates/core/src/routes/mod.rs names them; a function's sample event is
# events/<its name in camelCase>.json (send-message: events/sendMessage.json). A test checks both
# against the table and template.yaml.
FUNCTIONS := $(sort $(basename $(notdir $(wildcard crates/functions/src/bin/*.rs))))
event_of = $(shell echo '$(1)' | sed -E 's/-(.)/\U\1/g')

TOOLS := $(CURDIR)/.tools
VENV := $(TOOLS)/venv
NODE := $(TOOLS)/node
CARGO_TOOLS := $(TOOLS)/cargo
CFN_GUARD_VERSION := 3.2.1
GUARD_STAMP := $(CARGO_TOOLS)/.installed-cfn-guard-$(CFN_GUARD_VERSION)
PY_STAMP := $(VENV)/.installed-$(shell cksum < tools/requirements.txt | cut -d' ' -f1)
NODE_STAMP := $(NODE)/.installed-$(shell cksum < tools/package-lock.json | cut -d' ' -f1)
export PATH := $(VENV)/bin:$(NODE)/node_modules/.bin:$(CARGO_TOOLS)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0

# Local runs talk to dynalite and the local gateway with dummy credentials.
LOCAL_ENV := AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	TABLE_NAME=$(TABLE) MEMBERSHIPS_TABLE_NAME=$(TABLE)-memberships USERS_TABLE_NAME=$(TABLE)-users \
	MESSAGES_TABLE_NAME=$(TABLE)-messages \
	AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$(DYNAMODB_PORT) \
	APIGW_MANAGEMENT_ENDPOINT=http://127.0.0.1:$(PORT)/$(STAGE) \
	AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$(SQS_PORT) \
	FAN_OUT_QUEUE_URL=http://127.0.0.1:$(SQS_PORT)/123456789012/chat-fan-out \
	FAN_OUT_POSTS_PER_SECOND=5000 FAN_OUT_WORKERS=10
# make watch AUTH=1: token mode, with make dev-auth's issuer (the authorizer needs it to start).
ifeq ($(AUTH),1)
LOCAL_ENV += AUTH_ISSUER=$(ISSUER) AUTH_AUDIENCE=chat-local
endif

.PHONY: help tools template-mutations asyncapi browser screenshot dev dev-auth token dev-lambda test test-fast lint build bench bench-smoke deploy watch dynalite fan-out clean

help: ## List the targets
	@grep -E '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

tools: $(PY_STAMP) $(NODE_STAMP) $(GUARD_STAMP) ## Install the pinned tools into .tools/ (cargo-lambda, sam, cfn-lint, dynalite, wscat, @asyncapi/parser, cfn-guard)

$(PY_STAMP): tools/requirements.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

# AWS CloudFormation Guard, from crates.io (about 2 minutes to compile, once).
$(GUARD_STAMP):
	cargo install --quiet --locked cfn-guard --version $(CFN_GUARD_VERSION) --root $(CARGO_TOOLS)
	touch $@

$(NODE_STAMP): tools/package.json tools/package-lock.json
	rm -rf $(NODE) && mkdir -p $(NODE)
	cp tools/package.json tools/package-lock.json $(NODE)/
	cd $(NODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

dev: ## Run the whole chat locally: API Gateway emulator on ws://127.0.0.1:PORT/STAGE, in-process handlers, the web page at http://127.0.0.1:PORT/
	cargo run -p chat-local-gateway -- --port $(PORT) --stage $(STAGE)

dev-auth: ## Token mode locally: a development OpenID issuer on ISSUER_PORT, and the gateway verifying its tokens
	cargo build -p chat-testing --bin dev-issuer -p chat-local-gateway --bin local-gateway
	target/debug/dev-issuer --port $(ISSUER_PORT) & issuer=$$!; trap 'kill $$issuer 2>/dev/null' EXIT INT TERM; \
	target/debug/local-gateway --port $(PORT) --stage $(STAGE) \
		--parameter-overrides AuthIssuer=$(ISSUER) AuthAudience=chat-local

token: ## Print a token from make dev-auth's issuer: make token USER=alice
	@curl -fsS "$(ISSUER)/token?user=$(USER)" || { echo "no issuer at $(ISSUER): run make dev-auth first" >&2; exit 1; }
	@echo

dev-lambda: ## The local gateway in front of `make watch` (the real binaries, on dynalite)
	cargo run -p chat-local-gateway -- --port $(PORT) --stage $(STAGE) \
		--lambda-endpoint http://127.0.0.1:9000 --function-names binary --lambda-concurrency $(LAMBDA_CONCURRENCY)

test: tools browser lint ## Lint everything, then run every test (dynalite and Chromium are started by the tests)
	cargo test --workspace --all-targets

test-fast: ## The inner loop, in under a minute once built: the core crate's tests on the in-memory store (no lint, no dynalite, no browser; make test runs everything)
	cargo test -p chat-core --all-targets -- --skip dynamodb

# The web page's tests drive Debian's Chromium through chromedriver. System packages, so apt-get:
# as root it installs them; otherwise it stops with the command to run.
browser: ## Install Chromium and chromedriver for the browser tests (Debian: apt-get install chromium chromium-driver)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	else \
		echo "The browser tests need Chromium and chromedriver: sudo apt-get install -y chromium chromium-driver" >&2; exit 1; \
	fi

screenshot: browser ## Retake docs/chat.png: the browser test's screenshot of a real conversation
	CHAT_SCREENSHOT=docs/chat.png cargo test -p chat-local-gateway --test gateway browser::alice_and_bob

template-mutations: tools ## Apply each known misconfiguration (tools/template/mutations.yaml) to template.yaml, check each is caught, rewrite docs/deploy.md's table
	cargo run --quiet -p chat-testing --bin template-mutations -- --write

asyncapi: ## Regenerate docs/asyncapi.yaml, the protocol's AsyncAPI 3.0 document, from the Rust types
	cargo run --quiet -p chat-testing --bin asyncapi > docs/asyncapi.yaml.tmp
	mv docs/asyncapi.yaml.tmp docs/asyncapi.yaml

lint: tools ## rustfmt, clippy -D warnings; cfn-lint, sam validate --lint, the Guard rules and the mutation test on template.yaml; the AsyncAPI parser on docs/asyncapi.yaml
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cfn-lint template.yaml
	sam validate --lint
	tools/template/check.sh template.yaml
	cargo run --quiet -p chat-testing --bin template-mutations
	sam validate --lint --region us-east-1 -t crates/local-gateway/tests/fixtures/sam-websocket-api.yaml
	cp tools/validate-asyncapi.mjs $(NODE)/ && node $(NODE)/validate-asyncapi.mjs docs/asyncapi.yaml

build: tools ## Build the Lambda binaries (nine routes, the fan-out worker, the authorizer) for arm64 (target/lambda/<name>/bootstrap)
	rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
	cargo lambda build --release --arm64 $(addprefix --bin ,$(FUNCTIONS))

bench: build ## Measure cold starts, fan-out, handler cost, calls per message, the local gateway and zip sizes (BENCHMARKS.md)
	cargo build --release $(addprefix --bin ,$(FUNCTIONS))
	cargo build --profile local --bin local-gateway --bin bench
	target/local/bench --functions target/release --deployment target/lambda \
		--gateway target/local/local-gateway --out BENCHMARKS.md

bench-smoke: tools ## The benchmark at tiny sizes on debug builds, in seconds: checks that every figure is produced
	# Every target, as make test builds them: the same features, so its dependencies are reused.
	cargo build --workspace --all-targets
	target/debug/bench --smoke --functions target/debug --deployment target/debug \
		--gateway target/debug/local-gateway --out target/bench-smoke.md

deploy: tools ## sam build, then sam deploy (guided the first time, until samconfig.toml exists)
	sam build
	if [ -f samconfig.toml ]; then sam deploy; \
	else sam deploy --guided --stack-name $(STACK) --parameter-overrides StageName=$(STAGE); fi

dynalite: tools ## Run dynalite on DYNAMODB_PORT with the chat's four tables (connections, memberships, users, messages), for `make watch`
	$(LOCAL_ENV) cargo run --quiet -p chat-testing --bin dev-dynamodb -- --port $(DYNAMODB_PORT) --table $(TABLE)

fan-out: tools ## Big rooms for `make watch`: moto's SQS server on SQS_PORT with the template's fan-out queue, and an event source invoking fan-out-worker on :9000
	cargo run --quiet -p chat-testing --bin dev-fan-out -- --port $(SQS_PORT)

watch: tools ## Serve the functions on the Lambda Invoke API (port 9000) with cargo lambda watch
	cargo build $(addprefix --bin ,$(FUNCTIONS))
	$(LOCAL_ENV) cargo lambda watch --invoke-port 9000

invoke-%: tools ## Invoke a function (connect, disconnect, default, send-message, join-room, leave-room, get-history, sync, mark-read, fan-out-worker, authorizer) on `make watch` with its sample event
	@test -f crates/functions/src/bin/$*.rs || { echo "no function $*; try one of: $(FUNCTIONS)"; exit 2; }
	cargo lambda invoke $* --data-file events/$(call event_of,$*).json

clean: ## Remove build output and installed tools
	cargo clean
	rm -rf .aws-sam $(TOOLS)
