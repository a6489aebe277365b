-- BM25 for the keyword search (index/stores/postgres/store.py, lexical_search), as the embedded store
-- scores it: besides each word's count in a passage (the positions its lexeme holds in passages.lexemes),
-- BM25 needs each passage's length in words, and the average length over the library.
--
-- The length counts every position of the passage's tsvector (stemmed words and numbers alike: the text
-- search configuration drops no stop words). A generated column cannot read another generated column, so
-- the tsvector is made again from the body here. Adding the column rewrites the passages table once.

CREATE FUNCTION newsbot_token_count(tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT coalesce(sum(coalesce(cardinality(positions), 1)), 0)::integer FROM unnest($1) $$;

ALTER TABLE passages
    ADD COLUMN token_count integer GENERATED ALWAYS AS (newsbot_token_count(to_tsvector('newsbot_english', body))) STORED;
