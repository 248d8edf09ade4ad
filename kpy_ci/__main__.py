from kpy_ci.cli import entry

entry()
