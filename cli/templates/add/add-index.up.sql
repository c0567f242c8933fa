CREATE INDEX {{ index }} ON {{ table }} ({{ column }});
