"""The article library: ingest, chunk, embed, store and search news articles."""
