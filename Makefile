# srvlink: `make demo` shows it working, `make test` runs every check.
# Both install what they need first: Debian packages when missing (as root,
# or through sudo), then the npm packages from the lockfile.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# command:package pairs the test suite needs from Debian.
TEST_TOOLS := dnsmasq:dnsmasq-base dig:bind9-dnsutils unshare:util-linux nsenter:util-linux setpriv:util-linux setsid:util-linux flock:util-linux prlimit:util-linux mount:mount getent:libc-bin mkfifo:coreutils ip:iproute2 etcd:etcd-server etcdctl:etcd-client openssl:openssl \
  cc:gcc c++:g++ strip:binutils ldd:libc-bin socat:socat podman:podman runc:runc \
  java:default-jre-headless javac:default-jdk-headless /usr/share/zookeeper/bin/zkServer.sh:zookeeperd redis-server:redis-server /usr/lib/postgresql/15/bin/postgres:postgresql \
  prometheus:prometheus promtool:prometheus perl:perl-base dnsperf:dnsperf faketime:faketime

.PHONY: help deps system-deps build native image-artifact image-test lint test demo bench clean

help:
	@echo "make demo    build srvlink and show it forwarding traffic (no etcd, no root needed)"
	@echo "make test    install test dependencies, build, lint and run the whole suite"
	@echo "make build   compile to dist/ (the srvlink executable is dist/main.js)"
	@echo "make lint    type check and eslint"
	@echo "make bench   benchmarks beside the alternatives (test/bench)"
	@echo "make image-artifact  self-contained srvlink (no Node needed) in dist/artifact/srvlink/"
	@echo "make image-test      build the images of images/ with podman and run them (skips, saying why, without podman)"

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

deps: node_modules/.package-lock.json

# Installs only what is missing, with one `apt-get update` before.
system-deps:
	@missing=""; \
	for pair in $(TEST_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v "$$cmd" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The native addon (zombie reaping, native/). npm ci builds it too; when it
# cannot be built, srvlink runs without it and says so.
NATIVE_ADDON := build/Release/srvlink_native.node

$(NATIVE_ADDON): binding.gyp $(wildcard native/src/*.c native/src/*.h) | deps
	npm run --silent build:native

native: $(NATIVE_ADDON)

build: deps native
	rm -rf dist
	npx tsc -p tsconfig.build.json
	node images/srvlink/bundle.mjs
	chmod +x dist/main.js

# One executable with its own node (docs/architecture.md §4.8), what the images copy and the
# PID-1 tests run.
ARTIFACT := dist/artifact/srvlink/srvlink

$(ARTIFACT): $(shell find src -name '*.ts') images/srvlink/build-artifact.mjs package-lock.json $(wildcard $(NATIVE_ADDON)) | deps native
	node images/srvlink/build-artifact.mjs

image-artifact: $(ARTIFACT)

image-test: system-deps image-artifact
	PATH="$$PATH:/usr/sbin:/sbin" npx vitest run test/images

lint: deps
	npx tsc -p tsconfig.json --noEmit
	npx eslint .

test: system-deps build image-artifact lint
	PATH="$$PATH:/usr/sbin:/sbin" npx vitest run

demo: build
	node dist/demo/demo.js

# The alternatives a user would pick, measured beside srvlink in the same run,
# and what the bench itself needs (cc builds its C client and echo server).
BENCH_TOOLS := iperf3:iperf3 haproxy:haproxy socat:socat dnsperf:dnsperf unbound:unbound dnsmasq:dnsmasq-base \
  etcd:etcd-server etcdctl:etcd-client cc:gcc setpriv:util-linux perf:linux-perf

# test/bench/run.ts and its sections (with the dnsmasq arguments the tests use), transpiled as they are (no bundling: the runner finds
# its sections in dist/bench/sections/). SECTIONS=throughput,dns runs some; ROUNDS=5 more rounds.
BENCH_SOURCES := test/bench/run.ts 'test/bench/lib/*.ts' 'test/bench/sections/*.ts' test/helpers/dnsmasq-args.ts

bench: build
	@$(MAKE) --no-print-directory system-deps TEST_TOOLS="$(BENCH_TOOLS)"
	rm -rf dist/bench dist/helpers
	npx esbuild $(BENCH_SOURCES) --outdir=dist --outbase=test --platform=node --format=esm --target=node20 --log-level=warning
	PATH="$$PATH:/usr/sbin:/sbin" node dist/bench/run.js

clean:
	rm -rf dist
