-- GeoGridFS schema, version 5: a queue entry waiting out a failure comes due
-- again when its file or one of its replicas moves.
--
-- A copy fails when metadata lags the nodes (a mount replaying its journal
-- after an outage moves files and replica rows only later; a pending rename
-- is applied later): the entry is deferred (minutes for a repeated failure).
-- Once the file's path or a replica's node path changes, the failure's cause
-- may be gone: the entry is due at once. Only entries that exist are touched
-- (a folder rename of many files adds no work for files at their target).

CREATE FUNCTION geogridfs_requeue_moved_file() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE replication_queue SET not_before = now() WHERE file_id = NEW.id AND not_before > now();
  RETURN NULL;
END $$;
CREATE TRIGGER files_requeue_moved AFTER UPDATE OF path ON files
  FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path AND NEW.deleted_at IS NULL) EXECUTE FUNCTION geogridfs_requeue_moved_file();

CREATE FUNCTION geogridfs_requeue_moved_replica() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE replication_queue SET not_before = now() WHERE file_id = NEW.file_id AND not_before > now();
  RETURN NULL;
END $$;
CREATE TRIGGER replicas_requeue_moved AFTER UPDATE OF path, version ON replicas
  FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path OR OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION geogridfs_requeue_moved_replica();
