-- Full-text search kept in sync by triggers (SQLite's documented external-content recipe),
-- a contentless index, and a spatial index.
CREATE VIRTUAL TABLE victim__note_fts USING fts5(
    title, body, content = 'victim__note', content_rowid = 'id', tokenize = 'porter unicode61'
);
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
INSERT INTO victim__note_fts (victim__note_fts) VALUES ('rebuild');

CREATE VIRTUAL TABLE victim__tag_fts USING fts5(tag, content = '', contentless_delete = 1);

CREATE VIRTUAL TABLE victim__place USING rtree(id, min_lat, max_lat, min_lon, max_lon, +note_id INTEGER);
