"""Cross-posting: a Telegram post into per-network parts (X, Bluesky, Mastodon, Threads, LinkedIn).

Uses the same LLM client settings as answers for translation. Never imports `bot/`.
"""
