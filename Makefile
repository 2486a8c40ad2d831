# The two commands the README opens with:
#   make demo   installs what is missing (apt + .venv) and runs `edgeward demo`
#   make test   installs what is missing and runs the whole test suite, lint and types
.PHONY: demo test bootstrap lint bench

bootstrap:
	./scripts/bootstrap

demo: bootstrap
	.venv/bin/edgeward demo

test: bootstrap
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy
	.venv/bin/pytest $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy

bench: bootstrap
	.venv/bin/python bench/boot_verify.py
