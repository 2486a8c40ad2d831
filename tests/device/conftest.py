"""Fixtures for the device tests: a throwaway sandboxed app, a gateway with installed
apps, and the audit monitor."""

from tests.device.apps_side import board  # noqa: F401 (fixture)
from tests.device.sandboxing import app, reports  # noqa: F401 (fixtures)
