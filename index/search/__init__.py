"""Finding the passages that answer: hybrid retrieval, fusion, the optional reranker and its training."""
