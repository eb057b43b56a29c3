"""``make bench``: cf-invalidator against the classic one-file Lambda, side by side, on the local stack.

See ``bench/README.md`` for what is measured and how. Run with ``python -m bench`` from the
repository root (the Makefile does).
"""
