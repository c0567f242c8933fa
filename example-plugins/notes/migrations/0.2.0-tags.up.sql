CREATE TABLE notes__tag (
    note_id INTEGER NOT NULL REFERENCES notes__note(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (note_id, tag)
);
