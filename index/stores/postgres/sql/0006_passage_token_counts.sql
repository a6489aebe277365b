-- BM25 for the keyword search (index/stores/postgres/store.py, lexical_search), as the embedded store
-- scores it: besides each word's count in a passage (the positions its lexeme holds in passages.lexemes),
-- BM25 needs each passage's length in words, and the average length over the library.
--
-- The words are cut as the embedded store's FTS5 tokenizer ("porter unicode61") cuts them, as far as
-- PostgreSQL's parser allows: the original Porter stemmer instead of Snowball's English one, and the
-- text folded first by newsbot_fold: diacritics removed ("Pelé": "pele"), and the punctuation that
-- PostgreSQL's parser reads inside a token (hyphens, dots, slashes, colons, @ and _) read as spaces, so
-- that compounds, numbers, abbreviations and addresses count as their parts, as in FTS5 ("self-driving":
-- "self", "drive"; "Covid-19": "covid", "19"; "U.S.": "u", "s"; "3.5": "3", "5"; "example.org": "example",
-- "org"). The keyword search folds a question's words the same way.
ALTER TEXT SEARCH DICTIONARY newsbot_stem (LANGUAGE = porter);

CREATE FUNCTION newsbot_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT regexp_replace(normalize(translate($1, '-./@:_', '      '), NFD), '[\u0300-\u036f]', '', 'g') $$;

-- A passage's length counts every position of its tsvector (stemmed words and numbers alike: the
-- configuration drops no stop words).
CREATE FUNCTION newsbot_token_count(tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT coalesce(sum(coalesce(cardinality(positions), 1)), 0)::integer FROM unnest($1) $$;

-- The lexemes are made again with the changed configuration, and the lengths beside them (a generated
-- column cannot read another, so each makes the tsvector from the body). This rewrites the passages
-- table once, and rebuilds its GIN index.
ALTER TABLE passages
    DROP COLUMN lexemes,
    ADD COLUMN lexemes tsvector GENERATED ALWAYS AS (to_tsvector('newsbot_english', newsbot_fold(body))) STORED,
    ADD COLUMN token_count integer
        GENERATED ALWAYS AS (newsbot_token_count(to_tsvector('newsbot_english', newsbot_fold(body)))) STORED;
CREATE INDEX passages_lexemes ON passages USING gin (lexemes);
