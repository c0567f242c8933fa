ALTER TABLE {{ table }} RENAME TO {{ to }};
