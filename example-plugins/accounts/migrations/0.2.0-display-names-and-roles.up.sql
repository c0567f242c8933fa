ALTER TABLE accounts__user ADD COLUMN display_name TEXT;
CREATE TABLE accounts__role (
    user_id INTEGER NOT NULL REFERENCES accounts__user(id) ON DELETE CASCADE,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX accounts__role_by_role ON accounts__role(role);
