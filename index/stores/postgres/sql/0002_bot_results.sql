-- Answers the bot has sent, so that any replica can serve their "More passages" and "Sources" buttons
-- (index/stores/postgres/results.py). A row holds what the search decided (passage ids, scores and ranks, the marked
-- sentence spans) as JSON, never the passages themselves: they are read back from the library, so a
-- passage removed since is simply not shown. Rows expire by age (postgres.result_ttl_hours) and
-- each chat keeps only its newest ones (postgres.result_max_per_chat).

CREATE TABLE bot_results (
    chat_id BIGINT NOT NULL,
    token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    question TEXT NOT NULL,
    query_vector vector,
    answer JSONB NOT NULL,
    PRIMARY KEY (chat_id, token)
);
-- Pruning: the oldest rows overall, and a chat's rows newest first.
CREATE INDEX bot_results_by_age ON bot_results(created_at);
CREATE INDEX bot_results_by_chat_age ON bot_results(chat_id, created_at DESC);
