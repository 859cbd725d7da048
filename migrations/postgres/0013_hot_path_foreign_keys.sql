-- The rows written for every task (the task itself, its assignment, its
-- events in the outbox and the log) no longer check their account, or the
-- assignment its host, with a foreign key.
--
-- On PostgreSQL each such check is an internal query that takes a KEY SHARE
-- lock on the parent row. All of an account's writers lock the same account
-- row, so the row's lockers pile up as a MultiXact: at 1,000 simulated hosts
-- these checks were about 7 of the 33 statements per task (BENCHMARKS.md).
--
-- What they guarded cannot happen: accounts are never deleted, every one of
-- these rows takes its account from an authenticated principal or from the
-- row it derives from, and deleting a cluster deletes its hosts' assignments
-- before the hosts (store::hosts::delete_deregistered_in_cluster). The keys
-- that cascade or refuse a delete (tasks to clusters, hosts to clusters)
-- stay.
ALTER TABLE tasks DROP CONSTRAINT tasks_account_id_fkey;
ALTER TABLE host_assignments DROP CONSTRAINT host_assignments_account_id_fkey;
ALTER TABLE host_assignments DROP CONSTRAINT host_assignments_host_id_fkey;
ALTER TABLE event_outbox DROP CONSTRAINT event_outbox_account_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_account_id_fkey;
