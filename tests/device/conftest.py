"""Fixtures for the device tests: a throwaway sandboxed app and the audit monitor."""

from tests.device.sandboxing import app, reports  # noqa: F401 (fixtures)
