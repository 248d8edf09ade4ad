"""Protocol plug-ins, sniffed in this order; ``generic`` takes whatever none claims.
See base.py for the shape each one has."""
