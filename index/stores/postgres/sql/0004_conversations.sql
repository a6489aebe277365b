-- Each chat's recent questions, so that a follow-up ("and in 2023?", or a reply to an answer) is read
-- with the turn before it on whichever replica it reaches (index/stores/postgres/conversations.py).
-- A chat keeps its newest few turns (conversation.turns), and its conversation ends
-- conversation.ttl_minutes after its last turn; /new deletes it.

CREATE TABLE bot_conversations (
    turn_id BIGSERIAL PRIMARY KEY,
    chat_id BIGINT NOT NULL,
    asked_at TIMESTAMPTZ NOT NULL,
    question TEXT NOT NULL,
    context_words TEXT[] NOT NULL DEFAULT '{}',
    article_ids BIGINT[] NOT NULL DEFAULT '{}',
    passage_ids BIGINT[] NOT NULL DEFAULT '{}',
    title TEXT NOT NULL DEFAULT '',
    token TEXT,
    message_ids BIGINT[] NOT NULL DEFAULT '{}'
);
-- A chat's turns newest first; pruning by age.
CREATE INDEX bot_conversations_by_chat ON bot_conversations(chat_id, turn_id DESC);
CREATE INDEX bot_conversations_by_age ON bot_conversations(asked_at);
