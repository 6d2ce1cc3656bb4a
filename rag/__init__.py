"""The corpus store, the indexes, retrieval and answer composition.

Talks to LLMs only through the `openai` package and a base URL. Never imports `bot/` or
`inference/`.
"""
