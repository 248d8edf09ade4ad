"""One module per protocol, each with the shape of base.py; registry.py lists them.
Nothing here does I/O."""
