-- Seed and clean-up: bulk inserts, updates and deletes through the synced triggers.
INSERT INTO victim__user (email, name) VALUES ('ada@example.com', 'Ada'), ('bob@example.com', 'Bob'), ('cy@example.com', 'Cy');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO victim__note (user_id, title, body, tags, pinned)
SELECT 1 + i % 3, 'note ' || i, 'body of note number ' || i || CASE WHEN i % 10 = 0 THEN ' lighthouse' ELSE '' END,
       json_array('t' || (i % 4)), i % 50 = 0
FROM n;
UPDATE victim__note SET body = body || ' revised' WHERE id % 7 = 0;
DELETE FROM victim__note WHERE id % 11 = 0;
DELETE FROM victim__note WHERE user_id = 3 AND pinned = 0;
UPDATE victim__user SET deleted_at = unixepoch() WHERE email = 'cy@example.com';
INSERT INTO victim__setting VALUES (1, 'theme', 'dark'), (2, 'theme', 'light');
INSERT INTO victim__tag_fts (rowid, tag) SELECT id, tags FROM victim__note WHERE id < 20;
DELETE FROM victim__tag_fts WHERE rowid = 5;
INSERT INTO victim__place SELECT id, 48.0 + id / 100.0, 48.1 + id / 100.0, 2.0, 2.5, id FROM victim__note WHERE id <= 50;
DELETE FROM victim__place WHERE id > 40;
