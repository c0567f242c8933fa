ALTER TABLE {{ table }} ADD COLUMN {{ column }} {{ column_type }};
