"""Reading articles: files and pages, downloads behind the address guard, passages, near-duplicates, feeds."""
