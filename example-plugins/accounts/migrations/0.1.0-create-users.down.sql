DROP TABLE accounts__user;
