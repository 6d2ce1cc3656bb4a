"""Cross-posting: a Telegram post into per-network parts (X, Bluesky, Mastodon, Threads, LinkedIn).

Uses the same LLM client settings as answers for translation. Never imports `bot/`.
"""

# The networks a conversion targets when none are named. Defined here, not in crosspost.service, so
# that front ends can show it without loading twitter-text and openai (~2-4 s of start-up).
DEFAULT_TARGETS = ["x", "bluesky", "mastodon", "threads", "linkedin", "markdown"]
