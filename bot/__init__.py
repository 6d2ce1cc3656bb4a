"""Front ends: the Telegram bot and the `research-bot` command line.

Builds the settings once, builds the services, passes them down. Handlers and commands call
services; they never touch SQLAlchemy, FAISS or torch directly.
"""
