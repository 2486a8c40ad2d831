# Shortcuts for the scripts the README opens with.
.PHONY: demo test bootstrap bench

bootstrap:
	./scripts/bootstrap

demo:
	./scripts/demo

test:
	./scripts/test

bench: bootstrap
	.venv/bin/python bench/boot_verify.py
	.venv/bin/python bench/confinement.py
