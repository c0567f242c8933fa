DROP INDEX {{ index }};
