"""Thin HTTP routes: parse, authenticate, call a service, shape the answer."""
