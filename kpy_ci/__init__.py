"""kpy: record a service's real traffic as regression tests, and replay them in CI."""

__version__ = "0.1.0"
