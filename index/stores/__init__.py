"""Where a library is kept: the store contract, the two stores, the choice between them, and copies across."""
