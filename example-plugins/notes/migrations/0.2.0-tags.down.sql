DROP TABLE notes__tag;
