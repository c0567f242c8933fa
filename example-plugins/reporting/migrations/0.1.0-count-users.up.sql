CREATE TABLE reporting__summary AS SELECT count(*) AS users FROM accounts__user
