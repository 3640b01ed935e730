"""Helpers shared by the tests: fake transports and real server processes."""
