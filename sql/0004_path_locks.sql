-- GeoGridFS schema, version 4: grid-wide path locks.
--
-- Bytes at a path on a node are changed by several processes: every mount
-- (publish at close, unlink, rename, mkdir, rmdir, chmod, ...) and the
-- node's replicator (copies placed, pending deletes and renames applied,
-- stale or surplus copies dropped). Each decides from metadata and then acts
-- on the node, and metadata alone cannot order a mount's node change (made
-- before its metadata commit) against a replicator's check-then-act. So
-- every such change holds the path's lock from its decision to its metadata
-- record: EXCLUSIVE on each path it changes, SHARED on every folder above it
-- (a folder rename holds its folder exclusively, so nothing under it moves
-- meanwhile). Mounts wait for locks; replicators only try (they come back
-- later) and hold them for local operations only.
--
-- Locks are PostgreSQL session-level advisory locks keyed by a hash of the
-- path (a collision only makes two unrelated paths wait for each other),
-- taken in key order (no deadlock between lockers), released by the caller
-- after its metadata change committed, or by the server when the session
-- ends (a crashed process never leaves one behind).

-- lock keys for p_paths: each path exclusive, every proper ancestor folder
-- (not the root) shared; a key wanted both ways is exclusive; in key order
CREATE FUNCTION geogridfs_path_lock_keys(p_paths text[]) RETURNS TABLE (k bigint, excl boolean) LANGUAGE sql IMMUTABLE AS $$
  WITH wanted AS (
    SELECT p AS path, true AS excl FROM unnest(p_paths) AS p WHERE p <> '/'
    UNION ALL
    SELECT array_to_string((string_to_array(p, '/'))[1:i], '/'), false
      FROM unnest(p_paths) AS p, generate_series(2, cardinality(string_to_array(p, '/')) - 1) AS i
     WHERE p <> '/'
  )
  SELECT hashtextextended('ggfs-path:' || path, 0), bool_or(excl) FROM wanted GROUP BY 1 ORDER BY 1
$$;

-- take the locks of p_paths, waiting for each (lock_timeout / statement_timeout apply)
CREATE FUNCTION geogridfs_lock_paths(p_paths text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM geogridfs_path_lock_keys(p_paths) LOOP
    IF r.excl THEN PERFORM pg_advisory_lock(r.k); ELSE PERFORM pg_advisory_lock_shared(r.k); END IF;
  END LOOP;
END $$;

-- take the locks of p_paths only if all are free now; false (holding none) otherwise
CREATE FUNCTION geogridfs_try_lock_paths(p_paths text[]) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  r record;
  got boolean;
  taken bigint[] := '{}';
  modes boolean[] := '{}';
  i integer;
BEGIN
  FOR r IN SELECT * FROM geogridfs_path_lock_keys(p_paths) LOOP
    IF r.excl THEN got := pg_try_advisory_lock(r.k); ELSE got := pg_try_advisory_lock_shared(r.k); END IF;
    IF NOT got THEN
      FOR i IN 1 .. coalesce(array_length(taken, 1), 0) LOOP
        IF modes[i] THEN PERFORM pg_advisory_unlock(taken[i]); ELSE PERFORM pg_advisory_unlock_shared(taken[i]); END IF;
      END LOOP;
      RETURN false;
    END IF;
    taken := taken || r.k;
    modes := modes || r.excl;
  END LOOP;
  RETURN true;
END $$;

-- release what geogridfs_lock_paths / geogridfs_try_lock_paths took for the same p_paths
CREATE FUNCTION geogridfs_unlock_paths(p_paths text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM geogridfs_path_lock_keys(p_paths) LOOP
    IF r.excl THEN PERFORM pg_advisory_unlock(r.k); ELSE PERFORM pg_advisory_unlock_shared(r.k); END IF;
  END LOOP;
END $$;
