"""Source formats: turns files and pages into post/paper records and hands them to the store.

Knows nothing about embeddings, indexes or the bot.
"""
