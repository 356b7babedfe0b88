-- GeoGridFS metadata schema, version 1.
-- Applied by `geogridfs db migrate` in one transaction.
-- Paths are virtual paths inside the tree: '/' or '/a/b', no trailing slash,
-- no '.' or '..' components, compared byte-wise (COLLATE "C") so that a
-- subtree is one index range: path >= '/a/' AND path < '/a0'.

-- One global change sequence: every insert, update, rename and delete of a
-- folder or file takes the next value (the change feed and caches follow it).
CREATE SEQUENCE change_seq;

CREATE FUNCTION geogridfs_bump_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.seq := nextval('change_seq');
  RETURN NEW;
END $$;

CREATE FUNCTION geogridfs_valid_path(p text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT p = '/' OR (
    p LIKE '/%' AND p NOT LIKE '%/' AND p NOT LIKE '%//%'
    AND p NOT LIKE '%/./%' AND p NOT LIKE '%/../%'
    AND right(p, 2) <> '/.' AND right(p, 3) <> '/..'
    AND position(chr(1) in p) = 0
    AND octet_length(p) <= 4096
  )
$$;

-- Storage nodes. capacity/free/heartbeat are written by the node's replicator.
CREATE TABLE nodes (
  id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name           text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
  state          text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'readonly', 'drain', 'dead')),
  capacity_bytes bigint CHECK (capacity_bytes >= 0),
  free_bytes     bigint CHECK (free_bytes >= 0 AND (capacity_bytes IS NULL OR free_bytes <= capacity_bytes)),
  heartbeat_at   timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  state_changed_at timestamptz NOT NULL DEFAULT now()
);

-- Folders of the virtual tree. The root '/' always exists (id 1).
CREATE TABLE folders (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  path       text COLLATE "C" NOT NULL UNIQUE CHECK (geogridfs_valid_path(path)),
  parent_id  bigint REFERENCES folders (id) ON DELETE RESTRICT,
  mode       integer NOT NULL DEFAULT 493 CHECK (mode >= 0 AND mode <= 4095),  -- permission bits only (0755)
  uid        integer NOT NULL DEFAULT 0 CHECK (uid >= 0),
  gid        integer NOT NULL DEFAULT 0 CHECK (gid >= 0),
  mtime_us   bigint NOT NULL,
  ctime_us   bigint NOT NULL,
  seq        bigint NOT NULL,
  CHECK ((path = '/') = (parent_id IS NULL))
);
CREATE INDEX folders_parent ON folders (parent_id);
CREATE TRIGGER folders_seq BEFORE INSERT OR UPDATE ON folders FOR EACH ROW EXECUTE FUNCTION geogridfs_bump_seq();

-- Files and symlinks. A delete keeps the row as a tombstone (deleted_at set,
-- folder_id cleared) so the change feed can carry it; a rename leaves a
-- tombstone at the old path (renamed_to) and moves the live row.
CREATE TABLE files (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  path           text COLLATE "C" NOT NULL CHECK (geogridfs_valid_path(path) AND path <> '/'),
  folder_id      bigint REFERENCES folders (id) ON DELETE RESTRICT,
  kind           text NOT NULL DEFAULT 'file' CHECK (kind IN ('file', 'symlink')),
  size           bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
  mode           integer NOT NULL DEFAULT 420 CHECK (mode >= 0 AND mode <= 4095), -- permission bits only (0644)
  uid            integer NOT NULL DEFAULT 0 CHECK (uid >= 0),
  gid            integer NOT NULL DEFAULT 0 CHECK (gid >= 0),
  atime_us       bigint NOT NULL,
  mtime_us       bigint NOT NULL,
  ctime_us       bigint NOT NULL,
  checksum       text CHECK (checksum ~ '^[0-9a-f]{64}$'),          -- sha256 of the content (NULL: symlink)
  symlink_target text CHECK (octet_length(symlink_target) <= 4096),
  class          text NOT NULL,
  replica_target smallint NOT NULL CHECK (replica_target BETWEEN 1 AND 16),
  backup_target  smallint NOT NULL CHECK (backup_target BETWEEN 0 AND 16),
  version        bigint NOT NULL DEFAULT 1 CHECK (version >= 1),  -- bumped on every content change
  seq            bigint NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  deleted_at     timestamptz,
  renamed_to     bigint REFERENCES files (id) ON DELETE SET NULL,
  CHECK ((deleted_at IS NULL) = (folder_id IS NOT NULL)),
  CHECK ((kind = 'symlink') = (symlink_target IS NOT NULL)),
  CHECK (kind = 'symlink' OR checksum IS NOT NULL)
);
CREATE UNIQUE INDEX files_live_path ON files (path) WHERE deleted_at IS NULL;
CREATE INDEX files_folder ON files (folder_id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX files_seq ON files (seq);
CREATE INDEX files_tombstones ON files (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TRIGGER files_seq BEFORE INSERT OR UPDATE ON files FOR EACH ROW EXECUTE FUNCTION geogridfs_bump_seq();

-- Where the bytes of a file are. A replica counts only when its version is
-- the file's current version. `path` is where the bytes sit on that node: it
-- differs from files.path while a rename is pending on a node that was down.
CREATE TABLE replicas (
  file_id     bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
  node_id     integer NOT NULL REFERENCES nodes (id) ON DELETE RESTRICT,
  version     bigint NOT NULL CHECK (version >= 1),
  path        text COLLATE "C" NOT NULL CHECK (geogridfs_valid_path(path) AND path <> '/'),
  verified_at timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (file_id, node_id)
);
CREATE INDEX replicas_node_path ON replicas (node_id, path);
CREATE INDEX replicas_node_verified ON replicas (node_id, verified_at NULLS FIRST);

-- Work list of files whose replica set may need action (new or changed
-- content, lost replica, node drained or dead, targets changed). It is a
-- hint, not a count: the replicator recomputes the truth from `replicas`
-- before acting and removes the entry when the file is at target.
CREATE TABLE replication_queue (
  file_id     bigint PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
  reason      text NOT NULL,
  enqueued_at timestamptz NOT NULL DEFAULT now(),
  not_before  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replication_queue_due ON replication_queue (not_before, file_id);

-- A replicator's claim on copying one file to one node: two runs never copy
-- the same file to the same node; a crashed run's claim expires.
CREATE TABLE copy_claims (
  file_id    bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
  node_id    integer NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  holder     text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (file_id, node_id)
);

CREATE FUNCTION geogridfs_enqueue_file() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.deleted_at IS NULL AND NEW.kind = 'file' AND (TG_OP = 'INSERT'
      OR NEW.version <> OLD.version OR NEW.replica_target <> OLD.replica_target
      OR NEW.backup_target <> OLD.backup_target) THEN
    INSERT INTO replication_queue (file_id, reason) VALUES (NEW.id, CASE WHEN TG_OP = 'INSERT' THEN 'new' ELSE 'changed' END)
    ON CONFLICT (file_id) DO UPDATE SET not_before = now();
  ELSIF NEW.deleted_at IS NOT NULL AND TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN
    -- a deleted file's replicas are removed by the mount or, for nodes that
    -- were down, by their replicator; nothing to copy any more
    DELETE FROM replication_queue WHERE file_id = NEW.id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER files_enqueue AFTER INSERT OR UPDATE ON files FOR EACH ROW EXECUTE FUNCTION geogridfs_enqueue_file();

CREATE FUNCTION geogridfs_enqueue_replica_loss() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO replication_queue (file_id, reason)
  SELECT f.id, 'replica-lost' FROM files f WHERE f.id = OLD.file_id AND f.deleted_at IS NULL AND f.kind = 'file'
  ON CONFLICT (file_id) DO NOTHING;
  RETURN NULL;
END $$;
CREATE TRIGGER replicas_enqueue AFTER DELETE ON replicas FOR EACH ROW EXECUTE FUNCTION geogridfs_enqueue_replica_loss();

CREATE FUNCTION geogridfs_enqueue_node_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state <> OLD.state THEN
    NEW.state_changed_at := now();
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER nodes_state_changed BEFORE UPDATE ON nodes FOR EACH ROW EXECUTE FUNCTION geogridfs_enqueue_node_change();

CREATE FUNCTION geogridfs_enqueue_node_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state <> OLD.state AND NEW.state IN ('drain', 'dead') THEN
    INSERT INTO replication_queue (file_id, reason)
    SELECT r.file_id, 'node-' || NEW.state FROM replicas r WHERE r.node_id = NEW.id
    ON CONFLICT (file_id) DO NOTHING;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER nodes_enqueue AFTER UPDATE ON nodes FOR EACH ROW EXECUTE FUNCTION geogridfs_enqueue_node_files();

-- Off-site backup hosts. Only a hash of the token is stored.
CREATE TABLE backup_nodes (
  id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name             text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
  token_id         text NOT NULL UNIQUE CHECK (token_id ~ '^[0-9a-f]{16}$'),  -- public half of the token, for lookup
  token_hash       bytea NOT NULL CHECK (octet_length(token_hash) = 32),      -- sha256 of the secret half
  active           boolean NOT NULL DEFAULT true,
  bytes_per_sec    bigint CHECK (bytes_per_sec > 0),                         -- NULL = unlimited
  max_concurrent   integer NOT NULL DEFAULT 4 CHECK (max_concurrent BETWEEN 1 AND 1024),
  allowed_hours    int4range CHECK (allowed_hours IS NULL OR (lower(allowed_hours) >= 0 AND upper(allowed_hours) <= 24)),
  created_at       timestamptz NOT NULL DEFAULT now(),
  revoked_at       timestamptz,
  last_seen_at     timestamptz,
  cursor_seq       bigint,                                                   -- last feed position it asked after
  CHECK (active = (revoked_at IS NULL))
);

CREATE TABLE backups (
  file_id        bigint NOT NULL REFERENCES files (id) ON DELETE CASCADE,
  backup_node_id integer NOT NULL REFERENCES backup_nodes (id) ON DELETE CASCADE,
  version        bigint NOT NULL CHECK (version >= 1),
  verified_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (file_id, backup_node_id)
);
CREATE INDEX backups_node ON backups (backup_node_id);

-- Problems found by anyone (bounded: old resolved rows are trimmed).
CREATE TABLE problems (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind           text NOT NULL CHECK (kind IN ('checksum-mismatch', 'size-mismatch', 'missing-replica', 'missing-source',
                                               'unknown-file', 'copy-failed', 'corrupt-replica', 'backup-mismatch',
                                               'backup-unknown-file', 'journal-conflict', 'over-replicated', 'other')),
  node_id        integer REFERENCES nodes (id) ON DELETE CASCADE,
  backup_node_id integer REFERENCES backup_nodes (id) ON DELETE CASCADE,
  file_id        bigint REFERENCES files (id) ON DELETE CASCADE,
  path           text,
  detail         text NOT NULL DEFAULT '' CHECK (octet_length(detail) <= 8192),
  created_at     timestamptz NOT NULL DEFAULT now(),
  resolved_at    timestamptz
);
CREATE INDEX problems_recent ON problems (created_at DESC);
CREATE UNIQUE INDEX problems_open_once ON problems (kind, coalesce(node_id, 0), coalesce(backup_node_id, 0), coalesce(path, ''))
  WHERE resolved_at IS NULL;

-- API request log (bounded by the API's trim).
CREATE TABLE api_requests (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at             timestamptz NOT NULL DEFAULT now(),
  backup_node_id integer REFERENCES backup_nodes (id) ON DELETE SET NULL,
  method         text NOT NULL,
  route          text NOT NULL,
  status         smallint NOT NULL CHECK (status BETWEEN 100 AND 599),
  bytes          bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
  duration_ms    integer NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
  remote         text
);
CREATE INDEX api_requests_at ON api_requests (at DESC);

-- Derived counts: never stored beside the truth.
CREATE VIEW file_replica_counts AS
SELECT f.id AS file_id, f.path, f.class, f.size, f.replica_target, f.backup_target,
       count(r.node_id) FILTER (WHERE r.version = f.version AND n.state IN ('active', 'readonly', 'drain')) AS current_replicas,
       count(r.node_id) FILTER (WHERE r.version = f.version AND n.state IN ('active', 'readonly')) AS kept_replicas,
       (SELECT count(*) FROM backups b JOIN backup_nodes bn ON bn.id = b.backup_node_id
         WHERE b.file_id = f.id AND b.version = f.version AND bn.active) AS current_backups
FROM files f
LEFT JOIN replicas r ON r.file_id = f.id
LEFT JOIN nodes n ON n.id = r.node_id
WHERE f.deleted_at IS NULL AND f.kind = 'file'
GROUP BY f.id;

INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us)
VALUES ('/', NULL, 493, 0, 0, (extract(epoch FROM now()) * 1e6)::bigint, (extract(epoch FROM now()) * 1e6)::bigint);
