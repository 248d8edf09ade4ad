"""Schemas and drift: JSON Schemas of kpy's files, what a recording's dependencies looked like
(schema.lock.yaml), and what changed since (``kpy drift``)."""
