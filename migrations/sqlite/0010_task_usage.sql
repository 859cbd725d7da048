-- What a task used when its host last looked (CPU units and MiB, from its
-- containers' cgroups), written from heartbeats.
ALTER TABLE tasks ADD COLUMN resource_usage TEXT;
