ALTER TABLE {{ table }} RENAME COLUMN {{ to }} TO {{ column }};
