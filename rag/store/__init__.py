"""The corpus store: SQLAlchemy models, migrations, and the repository that reads and writes them.

`open_store(url)` migrates the schema to head and returns a `Store`. Nothing outside `rag/`
touches SQLAlchemy sessions; callers use the `Store` methods and plain record dataclasses.
"""

from rag.store.db import SourceInfo, Store, open_store
from rag.store.records import IngestSummary, PaperRecord, PostRecord, SourceBatch

__all__ = ["IngestSummary", "PaperRecord", "PostRecord", "SourceBatch", "SourceInfo", "Store", "open_store"]
