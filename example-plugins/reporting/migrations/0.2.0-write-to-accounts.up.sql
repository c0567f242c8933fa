-- A read grant never allows a write: this step fails.
UPDATE accounts__user SET email = lower(email)
