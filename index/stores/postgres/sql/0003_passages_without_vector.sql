-- The passages still waiting for a vector (after a change of embedding model, or an interrupted
-- re-embedding): the library looks for them on every start, which without this index reads the whole
-- table. The index stays empty while every passage has its vector.
CREATE INDEX passages_without_vector ON passages (id) WHERE vector IS NULL;
