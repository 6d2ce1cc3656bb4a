"""Small rules every package shares, each defined once: the error hierarchy (`core.errors`),
Telegram post links and store channel keys (`core.tme`), text measures and the citation marker
(`core.text`), language detection (`core.lang`).

Nothing here imports from `bot`, `rag`, `ingest`, `crosspost` or `inference`; they import from it.
"""
