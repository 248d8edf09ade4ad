"""The test-set format on disk: what record writes and test reads."""
