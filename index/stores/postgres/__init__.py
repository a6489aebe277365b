"""The server store: one PostgreSQL database with pgvector, shared by every bot replica."""
