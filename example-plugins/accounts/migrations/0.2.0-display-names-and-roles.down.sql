DROP INDEX accounts__role_by_role;
DROP TABLE accounts__role;
ALTER TABLE accounts__user DROP COLUMN display_name;
