"""The embedded store: SQLite, a FAISS file and memory-mapped keyword postings in a data directory."""
