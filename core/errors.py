"""The application's error hierarchy, caught once at each edge.

The CLI prints one line and exits non-zero, the bot replies politely, the server returns the
OpenAI error envelope. Raise these for user error (bad input, missing data, dead endpoints);
let programming errors propagate as tracebacks.
"""


class AppError(Exception):
    """A problem the user can act on; the message is shown to them as is."""


class ConfigError(AppError):
    """A setting is missing or has a value that cannot work."""


class StoreError(AppError):
    """The corpus database cannot be opened, migrated or written."""


class IngestError(AppError):
    """A source cannot be read or parsed."""


class RetrievalError(AppError):
    """Search cannot run: empty store, missing or corrupt index, bad query."""


class LLMError(AppError):
    """The OpenAI-compatible endpoint is unreachable or answered something unusable."""


class CrosspostError(AppError):
    """A post cannot be converted for a network."""
