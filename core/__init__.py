"""Small rules every package shares, each defined once: the error hierarchy (`core.errors`).

Nothing here imports from `bot`, `rag`, `ingest`, `crosspost` or `inference`; they import from it.
"""
