# voiceops.webrtc_pbx - developer entry points.
#   make lab       bring up the lab stack (root; starts dockerd, builds images)
#   make test      lint, unit tests, collection build, molecule with browser calls
#   make lab-down  remove the lab containers, network and volumes
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COLLECTION_LINK := .lab/collections/ansible_collections/voiceops/webrtc_pbx
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: bench host-packages lab lab-down test lint unit build molecule images dockerd softphone venv node collection-link secrets help

help:
	@sed -n '2,4p' Makefile

# The Debian packages both commands need (docker.io, debootstrap, chromium,
# python3-venv, Node.js...), installed when missing (lab/lab.py HOST_PACKAGES).
host-packages:
	@python3 lab/lab.py host-packages

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

node: node_modules/.installed

softphone/dist/app.js: node_modules/.installed $(shell find softphone/src -type f 2>/dev/null) softphone/build.mjs
	npm run --silent build

softphone: softphone/dist/app.js

# ansible-lint and molecule (ansible-compat) install the collection into
# ~/.ansible/collections unless a symlink to this checkout is already there; a
# stale copy left by an earlier checkout would shadow this one, so link it.
ANSIBLE_HOME_LINK := $(HOME)/.ansible/collections/ansible_collections/voiceops/webrtc_pbx

collection-link:
	mkdir -p $(dir $(COLLECTION_LINK)) $(dir $(ANSIBLE_HOME_LINK))
	ln -sfn $(CURDIR) $(COLLECTION_LINK)
	@if [ -e $(ANSIBLE_HOME_LINK) ] && [ ! -L $(ANSIBLE_HOME_LINK) ]; then rm -rf $(ANSIBLE_HOME_LINK); fi
	ln -sfn $(CURDIR) $(ANSIBLE_HOME_LINK)

dockerd:
	@python3 lab/lab.py dockerd

images: dockerd
	@python3 lab/images/build.py

lab: host-packages venv softphone collection-link
	@python3 lab/lab.py up

lab-down:
	@python3 lab/lab.py down

lint: venv collection-link
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: venv collection-link node
	$(BIN)/pytest -q tests/unit
	for t in softphone/test/*.test.mjs; do node --no-warnings $$t || exit 1; done

build: venv softphone
	mkdir -p .lab/dist
	$(BIN)/ansible-galaxy collection build --force --output-path .lab/dist

EL9_IMAGE ?= voiceops/el9-systemd:latest

molecule: venv softphone collection-link images secrets
	rm -f .lab/verify-failures.txt; docker volume rm -f webrtc-molecule-docker >/dev/null 2>&1 || true
	$(BIN)/molecule test -s default; rc=$$?; docker volume rm -f webrtc-molecule-docker >/dev/null 2>&1; \
	  if [ $$rc -ne 0 ] && [ -s .lab/verify-failures.txt ]; then \
	    echo "== verify tests that failed (.lab/verify-failures.txt):"; tail -n 12 .lab/verify-failures.txt; fi; \
	  exit $$rc
	@if docker image inspect $(EL9_IMAGE) >/dev/null 2>&1; then \
	  MOLECULE_EL9_IMAGE=$(EL9_IMAGE) $(BIN)/molecule test -s el9; \
	else \
	  echo "SKIPPED molecule scenario el9: image $(EL9_IMAGE) is not present (no registry here)."; \
	  echo "  With registry access: build or pull an EL9 systemd image, then run"; \
	  echo "  make molecule EL9_IMAGE=<image>   (see molecule/el9/molecule.yml)"; \
	fi

secrets:
	@python3 lab/lab.py secrets

# Every benchmark of issue #8 against the lab (run `make lab` first), then a
# summary table; figures and JSON in bench/results/ (git-ignored).
bench: venv softphone collection-link
	$(BIN)/python bench/run_all.py

test: host-packages lint unit build molecule
