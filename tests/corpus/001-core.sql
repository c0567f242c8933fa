-- A notes application's first migration, renamed into the plugin's namespace (victim__).
CREATE TABLE IF NOT EXISTS victim__user (
    id         INTEGER PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name       TEXT,
    created_at INTEGER NOT NULL DEFAULT (unixepoch()),
    deleted_at INTEGER
) STRICT;

CREATE TABLE IF NOT EXISTS victim__note (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id   INTEGER NOT NULL REFERENCES victim__user (id) ON DELETE CASCADE,
    title     TEXT NOT NULL,
    body      TEXT NOT NULL DEFAULT '',
    tags      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    words     INTEGER GENERATED ALWAYS AS (length(body) - length(replace(body, ' ', '')) + 1) VIRTUAL,
    slug      TEXT GENERATED ALWAYS AS (lower(replace(title, ' ', '-'))) STORED,
    pinned    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS victim__setting (
    user_id INTEGER NOT NULL REFERENCES victim__user (id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS victim__note_by_user ON victim__note (user_id, id DESC);
CREATE INDEX IF NOT EXISTS victim__note_pinned ON victim__note (user_id) WHERE pinned = 1;
CREATE INDEX IF NOT EXISTS victim__user_live ON victim__user (email) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS victim__note_slug_lower ON victim__note (lower(slug));
CREATE UNIQUE INDEX IF NOT EXISTS victim__note_title ON victim__note (user_id, title COLLATE NOCASE);

CREATE VIEW IF NOT EXISTS victim__note_summary AS
    SELECT n.id, u.email, n.title, n.words, json_array_length(n.tags) AS tag_count
    FROM victim__note AS n JOIN victim__user AS u ON u.id = n.user_id
    WHERE u.deleted_at IS NULL;

CREATE TRIGGER IF NOT EXISTS victim__user_soft_delete
    BEFORE DELETE ON victim__user
    WHEN old.deleted_at IS NULL AND (SELECT count(*) FROM victim__note WHERE user_id = old.id) > 100
BEGIN
    SELECT RAISE(ABORT, 'soft-delete users with many notes');
END;
