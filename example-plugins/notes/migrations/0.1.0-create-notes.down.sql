DROP TABLE notes__note;
