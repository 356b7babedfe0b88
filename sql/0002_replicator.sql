-- GeoGridFS schema, version 2: the replicator's per-node work list.
--
-- node_work (node, file): a replica row of `file` on `node` no longer matches
-- the file (the file was deleted, or renamed while the node was down, so
-- replicas.path <> files.path). The node's replicator applies the delete or
-- rename on its own folder and removes the entry. Filled at COMMIT by
-- deferred constraint triggers, which see the transaction's final state: a
-- mount that handled every reachable node in the same transaction leaves no
-- entry for those nodes. Read by (node_id, file_id): cost grows with the
-- node's backlog, never with the number of files.
CREATE TABLE node_work (
  node_id     integer NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  file_id     bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
  enqueued_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, file_id)
);

CREATE FUNCTION geogridfs_node_work_file() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO node_work (node_id, file_id)
  SELECT r.node_id, r.file_id FROM replicas r JOIN files f ON f.id = r.file_id
   WHERE r.file_id = NEW.id AND (f.deleted_at IS NOT NULL OR r.path <> f.path)
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER files_node_work AFTER UPDATE OF path, deleted_at ON files
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (OLD.path IS DISTINCT FROM NEW.path OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
  EXECUTE FUNCTION geogridfs_node_work_file();

CREATE FUNCTION geogridfs_node_work_replica() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO node_work (node_id, file_id)
  SELECT r.node_id, r.file_id FROM replicas r JOIN files f ON f.id = r.file_id
   WHERE r.file_id = NEW.file_id AND r.node_id = NEW.node_id AND (f.deleted_at IS NOT NULL OR r.path <> f.path)
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER replicas_node_work AFTER INSERT OR UPDATE OF path ON replicas
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  EXECUTE FUNCTION geogridfs_node_work_replica();

-- Wake `geogridfs replicator watch` daemons: one notification per statement
-- (PostgreSQL also folds identical notifications of one transaction).
CREATE FUNCTION geogridfs_work_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('geogridfs_work', TG_TABLE_NAME);
  RETURN NULL;
END $$;
CREATE TRIGGER replication_queue_notify AFTER INSERT ON replication_queue FOR EACH STATEMENT EXECUTE FUNCTION geogridfs_work_notify();
CREATE TRIGGER node_work_notify AFTER INSERT ON node_work FOR EACH STATEMENT EXECUTE FUNCTION geogridfs_work_notify();
CREATE TRIGGER nodes_state_notify AFTER UPDATE OF state ON nodes FOR EACH STATEMENT EXECUTE FUNCTION geogridfs_work_notify();

-- Over-replicated files waiting for `replicate --trim` (reported, never
-- trimmed unasked). One row per file; removed when the file is at target.
CREATE TABLE over_replicated (
  file_id     bigint PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
  found_at    timestamptz NOT NULL DEFAULT now()
);

-- Checksums a walk computed for local files that it could not attach to
-- metadata (a mismatch: recorded as a problem, both sides untouched), keyed
-- by size and mtime, so a re-run or a resumed walk does not hash them again.
CREATE TABLE walk_hashes (
  node_id   integer NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  path      text COLLATE "C" NOT NULL,
  size      bigint NOT NULL,
  mtime_us  bigint NOT NULL,
  checksum  text NOT NULL,
  hashed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, path)
);

-- A queue entry is removed by a replicator only if it is unchanged since the
-- replicator read it (same not_before), so every event that needs a new look
-- must touch the entry, not merely find it present: replica loss and node
-- state changes now refresh not_before too (0001 left an existing entry as
-- it was, which a concurrent "done" could then delete).
CREATE OR REPLACE FUNCTION geogridfs_enqueue_replica_loss() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO replication_queue (file_id, reason)
  SELECT f.id, 'replica-lost' FROM files f WHERE f.id = OLD.file_id AND f.deleted_at IS NULL AND f.kind = 'file'
  ON CONFLICT (file_id) DO UPDATE SET not_before = now(), reason = EXCLUDED.reason;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION geogridfs_enqueue_node_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state <> OLD.state AND NEW.state IN ('drain', 'dead') THEN
    INSERT INTO replication_queue (file_id, reason)
    SELECT r.file_id, 'node-' || NEW.state FROM replicas r WHERE r.node_id = NEW.id
    ON CONFLICT (file_id) DO UPDATE SET not_before = now(), reason = EXCLUDED.reason;
  END IF;
  RETURN NULL;
END $$;
