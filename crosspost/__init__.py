"""Cross-posting: a Telegram post into per-network parts (X, Bluesky, Mastodon, Threads, LinkedIn).

Uses the same LLM client settings as answers for translation. Never imports `bot/`.
"""

# The networks, by target name (one module each in crosspost/targets, one table each in rules.toml),
# with the names people know them by; a conversion targets all of them when none are named. Defined
# here, not in crosspost.service, so front ends can show them without loading twitter-text and
# openai (~2-4 s of start-up).
NETWORKS = {
    "x": "X",
    "bluesky": "Bluesky",
    "mastodon": "Mastodon",
    "threads": "Threads",
    "linkedin": "LinkedIn",
    "markdown": "Markdown",
}
DEFAULT_TARGETS = list(NETWORKS)
