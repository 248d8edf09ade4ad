"""Everything that owns sockets and the event loop lives here; protocols/ does no I/O."""
