ALTER TABLE {{ to }} RENAME TO {{ table }};
