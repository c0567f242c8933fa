-- wasmig:destructive (the rebuild drops the column pinned)
-- SQLite's documented way to change a table in ways ALTER TABLE cannot (here: a NOT NULL
-- column with a CHECK, a column dropped, the primary key kept): create the new table, copy,
-- drop the old one, rename, then recreate its indexes, triggers and views.
DROP VIEW victim__note_summary;
DROP TRIGGER victim__user_soft_delete;
CREATE TABLE victim__note_new (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id   INTEGER NOT NULL REFERENCES victim__user (id) ON DELETE CASCADE,
    title     TEXT NOT NULL,
    body      TEXT NOT NULL DEFAULT '',
    tags      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    words     INTEGER GENERATED ALWAYS AS (length(body) - length(replace(body, ' ', '')) + 1) VIRTUAL,
    slug      TEXT GENERATED ALWAYS AS (lower(replace(title, ' ', '-'))) STORED,
    status    TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published'))
);
INSERT INTO victim__note_new (id, user_id, title, body, tags, status)
    SELECT id, user_id, title, body, tags, CASE pinned WHEN 1 THEN 'published' ELSE 'draft' END FROM victim__note;
DROP TABLE victim__note;
ALTER TABLE victim__note_new RENAME TO victim__note;
CREATE INDEX victim__note_by_user ON victim__note (user_id, id DESC);
CREATE INDEX victim__note_published ON victim__note (user_id) WHERE status = 'published';
CREATE UNIQUE INDEX victim__note_title ON victim__note (user_id, title COLLATE NOCASE);
CREATE TRIGGER victim__note_ai AFTER INSERT ON victim__note BEGIN
    INSERT INTO victim__note_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER victim__note_ad AFTER DELETE ON victim__note BEGIN
    INSERT INTO victim__note_fts (victim__note_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER victim__note_au AFTER UPDATE ON victim__note BEGIN
    INSERT INTO victim__note_fts (victim__note_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO victim__note_fts (rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE VIEW victim__note_summary AS
    SELECT n.id, u.email, n.title, n.words, n.status
    FROM victim__note AS n JOIN victim__user AS u ON u.id = n.user_id
    WHERE u.deleted_at IS NULL;
CREATE TRIGGER victim__user_soft_delete
    BEFORE DELETE ON victim__user
    WHEN old.deleted_at IS NULL AND (SELECT count(*) FROM victim__note WHERE user_id = old.id) > 100
BEGIN
    SELECT RAISE(ABORT, 'soft-delete users with many notes');
END;
INSERT INTO victim__note_fts (victim__note_fts) VALUES ('integrity-check');
