-- PostgreSQL drops the foreign keys of the rows written for every task
-- (see postgres/0013). SQLite keeps them: there a check is an index probe
-- inside the process and takes no row lock, and dropping a key would mean
-- rebuilding the table.
SELECT 1;
