ALTER TABLE {{ table }} RENAME COLUMN {{ column }} TO {{ to }};
