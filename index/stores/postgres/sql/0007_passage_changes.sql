-- A change log of the passages, for processes that keep the keyword search's postings lists on their own
-- disk (postgres.keyword_index = "local": index/stores/postgres/keyword_mirror.py). Each passage added or
-- removed is one row, written by triggers on the passages table, so every writer logs its changes: the
-- library, `index migrate` (COPY), and SQL typed by hand. A process reads the rows after the last
-- sequence number it applied and catches up; PostgreSQL stays the source of truth.
--
-- Commit order: the triggers take a transaction-level advisory lock (key 0x6E6577736C6F67, "newslog")
-- before they number their rows, and hold it until their transaction ends. So of two transactions that
-- change passages the second numbers its rows only after the first has committed (or rolled back), and
-- whoever sees a sequence number sees every smaller one that will ever exist: a reader never skips a
-- row that was still in flight. (The library's writers already hold the writer lock, WRITER_LOCK in
-- store.py, so for them this lock is never contended.) Numbers of rolled-back transactions are gaps.
CREATE TABLE passage_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    passage_id BIGINT NOT NULL,
    added BOOLEAN NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row: the log's generation, a new value whenever the passages table is emptied at once (TRUNCATE,
-- as `index migrate --replace` does, which also restarts the passage ids), and the highest sequence
-- number pruned (rows older than the log keeps: keyword_mirror.LOG_KEEP). A process whose position is
-- below pruned_through, or that knew another generation (or other table OIDs: a pg_restore --clean makes
-- new tables), rebuilds its postings from the passages table.
CREATE TABLE passage_log_state (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    generation TEXT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO passage_log_state(singleton, generation, pruned_through) VALUES (TRUE, gen_random_uuid()::text, 0);

CREATE FUNCTION newsbot_log_passages_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM added_rows) THEN
        PERFORM pg_advisory_xact_lock(31073811150172007);
        INSERT INTO passage_changes(passage_id, added) SELECT id, TRUE FROM added_rows ORDER BY id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION newsbot_log_passages_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM removed_rows) THEN
        PERFORM pg_advisory_xact_lock(31073811150172007);
        INSERT INTO passage_changes(passage_id, added) SELECT id, FALSE FROM removed_rows ORDER BY id;
    END IF;
    RETURN NULL;
END $$;

-- Bodies are never rewritten by the program; one changed by hand is logged as a removal and an add.
CREATE FUNCTION newsbot_log_passage_rewritten() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(31073811150172007);
    INSERT INTO passage_changes(passage_id, added) VALUES (OLD.id, FALSE), (NEW.id, TRUE);
    RETURN NULL;
END $$;

CREATE FUNCTION newsbot_log_passages_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(31073811150172007);
    UPDATE passage_log_state SET generation = gen_random_uuid()::text,
        pruned_through = greatest(pruned_through, (SELECT coalesce(max(seq), 0) FROM passage_changes));
    DELETE FROM passage_changes;
    RETURN NULL;
END $$;

CREATE TRIGGER passages_log_added AFTER INSERT ON passages REFERENCING NEW TABLE AS added_rows
    FOR EACH STATEMENT EXECUTE FUNCTION newsbot_log_passages_added();
CREATE TRIGGER passages_log_removed AFTER DELETE ON passages REFERENCING OLD TABLE AS removed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION newsbot_log_passages_removed();
CREATE TRIGGER passages_log_rewritten AFTER UPDATE OF body ON passages
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body) EXECUTE FUNCTION newsbot_log_passage_rewritten();
CREATE TRIGGER passages_log_truncated AFTER TRUNCATE ON passages
    FOR EACH STATEMENT EXECUTE FUNCTION newsbot_log_passages_truncated();
