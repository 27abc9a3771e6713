# taskqueue — every command a user or CI needs. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAGE ?= dev

.PHONY: help install test lint serve run bench bench-scale package docs clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# The command line: `.venv/bin/taskqueue` (and `python -m taskqueue` from any directory).
	@echo "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/taskqueue-repo.pth"
	@printf '#!%s\nimport sys\nfrom taskqueue.cli import main\nsys.exit(main())\n' "$(CURDIR)/$(VENV)/bin/python" > $(VENV)/bin/taskqueue
	@chmod +x $(VENV)/bin/taskqueue
	touch $@

install: $(VENV)/.installed  ## create .venv with everything (once; again when requirements change)

test: install  ## run the whole test suite (unit, functional, end-to-end)
	$(PY) -m pytest -n 2 --dist loadgroup

lint: install  ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m mypy

serve: install  ## the embedded stack in the foreground on http://127.0.0.1:$(PORT)
	$(PY) -m chalicelib.local serve --port $(PORT)

run: install  ## the embedded stack plus a demo of real work; Ctrl-C stops it
	$(PY) -m chalicelib.local run --port $(PORT)

bench: install  ## the benchmarks of bench/ (the official client's workload) against the embedded stack
	$(PY) -m bench

bench-scale: install  ## createTask and claimWork with 100,000 tasks pending vs empty (about 10 minutes)
	$(PY) -m bench.depth --pending 100000

package: install  ## chalice package + CloudFormation merge template into infra/build (no AWS account needed)
	STAGE=$(STAGE) PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash infra/package.sh

docs: install  ## regenerate docs/reference/ and the state machine in docs/architecture.md from the code
	$(PY) -m chalicelib.reference render docs

clean:  ## remove the virtualenv and build output
	rm -rf $(VENV) infra/build .pytest_cache .mypy_cache .ruff_cache

.PHONY: deploy destroy deploy-check replay-failures

deploy: install  ## a whole stage on AWS with chalice deploy: base stack, functions, settings (STAGE=dev)
	$(PY) -m infra.deploy deploy --stage $(STAGE)

destroy: install  ## remove a stage from AWS; its tables, bucket and secret stay unless PURGE=1
	$(PY) -m infra.deploy destroy --stage $(STAGE) $(if $(filter 1 yes true,$(PURGE)),--purge)

replay-failures: install  ## redo the tasks stream's records set aside on STAGE's failure queue (AWS)
	$(PY) -m infra.replay --stage $(STAGE)

deploy-check: install  ## make deploy, chalice deploy, make destroy of STAGE=check against a local AWS stand-in
	$(PY) -m infra.deploy_check
