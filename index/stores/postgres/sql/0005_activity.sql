-- Reader activity (index/activity/, index/stores/postgres/activity.py): the questions asked and the votes
-- on their answers (kept insights.retention_days; askers and voters only as salted hashes), the topics
-- readers follow, which alerts were sent (one per article and reader, claimed by the insert), messages
-- waiting to be sent by whichever replica takes them first, and the admins who want notices.
-- Times are Unix seconds, as in the embedded store's activity file.

CREATE TABLE activity_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE activity_questions (
    id BIGSERIAL PRIMARY KEY,
    asked_at DOUBLE PRECISION NOT NULL,
    asker TEXT NOT NULL,
    chat TEXT NOT NULL,
    token TEXT,
    question TEXT NOT NULL,
    answered BOOLEAN NOT NULL,
    passage_ids TEXT NOT NULL DEFAULT '',
    reply_ms INTEGER NOT NULL,
    closed_by BIGINT,
    closed_at DOUBLE PRECISION
);
CREATE INDEX activity_questions_by_age ON activity_questions(asked_at);
CREATE INDEX activity_questions_by_answer ON activity_questions(chat, token);
CREATE INDEX activity_questions_by_asker ON activity_questions(asker);

CREATE TABLE activity_votes (
    question_id BIGINT NOT NULL,
    voter TEXT NOT NULL,
    vote SMALLINT NOT NULL,
    reason TEXT,
    voted_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (question_id, voter)
);
CREATE INDEX activity_votes_by_voter ON activity_votes(voter);

CREATE TABLE activity_topics (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    chat_id BIGINT NOT NULL,
    topic TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX activity_topics_by_user ON activity_topics(user_id);

CREATE TABLE activity_alerts (
    article_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    sent_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (article_id, user_id)
);
CREATE INDEX activity_alerts_by_user ON activity_alerts(user_id, sent_at);

CREATE TABLE activity_outbox (
    id BIGSERIAL PRIMARY KEY,
    chat_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    queued_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE activity_notices (admin_id BIGINT PRIMARY KEY);
