"""One module per source format; each registers itself with `ingest.registry.register`."""
