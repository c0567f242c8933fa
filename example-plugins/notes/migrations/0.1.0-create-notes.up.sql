CREATE TABLE notes__note (
    id       INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL,
    title    TEXT NOT NULL,
    body     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notes__note_by_owner ON notes__note(owner_id);
INSERT INTO notes__note (id, owner_id, title, body)
    VALUES (1, 0, 'Welcome to Notes', 'Notes are stored by the notes plugin in its own tables.');
