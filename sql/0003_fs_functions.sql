-- GeoGridFS schema, version 3: the mount's namespace operations as functions,
-- so that each operation is ONE round trip (src/meta/fs-ops.ts calls them; the
-- statements and their order are those the TypeScript ran one by one before,
-- so every trigger - seq, replication_queue, the deferred node_work ones of
-- 0002 - fires exactly as it did).
--
-- Errors: SQLSTATE 'GGFS1' with the errno name in HINT (ENOENT, EEXIST,
-- ENOTEMPTY, ENOTDIR, EISDIR, EINVAL, EBUSY) and a message naming the path;
-- HINT 'CONFLICT' when a file sits where a folder must be made.
-- Announcements: the caller passes the NOTIFY payload(s) for channel
-- p_channel, built as announce() builds them; pg_notify delivers them at commit.
-- Times: p_now is the caller's clock in microseconds since the epoch.

CREATE FUNCTION geogridfs_fs_error(p_errno text, p_message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'GGFS1', MESSAGE = p_message, HINT = p_errno;
END $$;

CREATE FUNCTION geogridfs_parent_of(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p = '/' OR position('/' in substr(p, 2)) = 0 THEN '/' ELSE regexp_replace(p, '/[^/]*$', '') END
$$;

-- mkdir -p of p_path with default attributes (0755, owner 0, like ensureFolder
-- in files.ts without attributes); returns the folder.
CREATE FUNCTION geogridfs_ensure_folder(p_path text, p_now bigint) RETURNS folders LANGUAGE plpgsql AS $$
DECLARE
  parent folders;
  got folders;
  parts text[];
  p text := '';
BEGIN
  SELECT * INTO got FROM folders WHERE path = p_path;
  IF FOUND THEN RETURN got; END IF;
  SELECT * INTO parent FROM folders WHERE path = '/';
  parts := string_to_array(substr(p_path, 2), '/');
  FOR i IN 1 .. coalesce(array_length(parts, 1), 0) LOOP
    p := p || '/' || parts[i];
    got := NULL;
    INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us)
    SELECT p, parent.id, 493, 0, 0, p_now, p_now
     WHERE NOT EXISTS (SELECT 1 FROM files WHERE path = p AND deleted_at IS NULL)
    ON CONFLICT (path) DO NOTHING
    RETURNING * INTO got;
    IF got.id IS NULL THEN
      SELECT * INTO got FROM folders WHERE path = p;
      IF NOT FOUND THEN PERFORM geogridfs_fs_error('CONFLICT', format('a file exists where folder %s should be', p)); END IF;
    END IF;
    parent := got;
  END LOOP;
  RETURN parent;
END $$;

-- mkdir: EEXIST when a live file or a folder holds the path.
CREATE FUNCTION geogridfs_make_folder(p_path text, p_mode integer, p_uid integer, p_gid integer, p_mtime_us bigint, p_now bigint,
                                      p_channel text, p_payload text) RETURNS folders LANGUAGE plpgsql AS $$
DECLARE
  parent folders;
  got folders;
BEGIN
  IF EXISTS (SELECT 1 FROM files WHERE path = p_path AND deleted_at IS NULL) THEN
    PERFORM geogridfs_fs_error('EEXIST', format('%s exists', p_path));
  END IF;
  parent := geogridfs_ensure_folder(geogridfs_parent_of(p_path), p_now);
  INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us)
  VALUES (p_path, parent.id, p_mode & 4095, p_uid, p_gid, coalesce(p_mtime_us, p_now), p_now)
  ON CONFLICT (path) DO NOTHING
  RETURNING * INTO got;
  IF got.id IS NULL THEN PERFORM geogridfs_fs_error('EEXIST', format('%s exists', p_path)); END IF;
  PERFORM pg_notify(p_channel, p_payload);
  RETURN got;
END $$;

-- rmdir: EBUSY for the root, ENOENT when no folder, ENOTEMPTY with a sub-folder or a live file.
CREATE FUNCTION geogridfs_remove_folder(p_path text, p_channel text, p_payload text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  fid bigint;
BEGIN
  IF p_path = '/' THEN PERFORM geogridfs_fs_error('EBUSY', 'the root cannot be removed'); END IF;
  SELECT id INTO fid FROM folders WHERE path = p_path;
  IF fid IS NULL THEN PERFORM geogridfs_fs_error('ENOENT', format('%s is not a folder', p_path)); END IF;
  IF EXISTS (SELECT 1 FROM folders WHERE parent_id = fid) OR EXISTS (SELECT 1 FROM files WHERE folder_id = fid AND deleted_at IS NULL) THEN
    PERFORM geogridfs_fs_error('ENOTEMPTY', format('%s is not empty', p_path));
  END IF;
  DELETE FROM folders WHERE id = fid;
  PERFORM pg_notify(p_channel, p_payload);
END $$;

-- unlink: the live file becomes a tombstone; the replicas named by the
-- (node, node path) pairs are dropped, any other stays a pending delete.
-- Returns the tombstone, or no row when no live file has the path (then
-- nothing is announced).
CREATE FUNCTION geogridfs_unlink_file(p_path text, p_nodes integer[], p_node_paths text[], p_now bigint,
                                      p_channel text, p_payload text) RETURNS SETOF files LANGUAGE plpgsql AS $$
DECLARE
  f files;
BEGIN
  UPDATE files SET deleted_at = now(), folder_id = NULL, ctime_us = p_now WHERE path = p_path AND deleted_at IS NULL RETURNING * INTO f;
  IF f.id IS NULL THEN RETURN; END IF;
  DELETE FROM replicas r USING unnest(p_nodes, p_node_paths) AS h(node_id, path)
   WHERE r.file_id = f.id AND r.node_id = h.node_id AND r.path = h.path;
  PERFORM pg_notify(p_channel, p_payload);
  RETURN NEXT f;
END $$;

-- rename of a file, symlink or folder (with its subtree), POSIX overwrite
-- rules: a file replaces a file (unlinked with p_dst_nodes as handled, at
-- p_to on each); a folder replaces an empty folder; EISDIR, ENOTDIR,
-- ENOTEMPTY, EINVAL, EBUSY otherwise; ENOENT when p_from is unknown.
-- Tombstones (renamed_to = the moved row) stay at the old paths. Replica rows
-- move only for the (node, node path) pairs the caller handled (a file) or
-- for the handled nodes whose replica sat at the file's path (a folder);
-- others stay pending renames. Announces p_file_payload or p_folder_payload
-- (and p_replaced_payload for a replaced file). Returns the kind and the
-- replaced file (a row of NULLs when none).
CREATE FUNCTION geogridfs_rename(p_from text, p_to text, p_nodes integer[], p_node_paths text[], p_dst_nodes integer[], p_now bigint,
                                 p_channel text, p_file_payload text, p_folder_payload text, p_replaced_payload text,
                                 OUT o_kind text, OUT o_replaced files) LANGUAGE plpgsql AS $$
DECLARE
  src_file files;
  src_folder folders;
  dst_file files;
  dst_folder folders;
  parent folders;
  lo text;
  hi text;
  cut integer;
BEGIN
  IF p_from = '/' OR p_to = '/' THEN PERFORM geogridfs_fs_error('EBUSY', 'the root cannot be renamed'); END IF;
  IF starts_with(p_to, p_from || '/') THEN PERFORM geogridfs_fs_error('EINVAL', format('cannot move %s into itself', p_from)); END IF;
  SELECT * INTO src_file FROM files WHERE path = p_from AND deleted_at IS NULL FOR UPDATE;
  IF src_file.id IS NULL THEN
    SELECT * INTO src_folder FROM folders WHERE path = p_from;
    IF src_folder.id IS NULL THEN PERFORM geogridfs_fs_error('ENOENT', format('%s is unknown', p_from)); END IF;
  END IF;
  SELECT * INTO dst_file FROM files WHERE path = p_to AND deleted_at IS NULL;
  IF dst_file.id IS NULL THEN SELECT * INTO dst_folder FROM folders WHERE path = p_to; END IF;

  IF src_file.id IS NOT NULL THEN
    IF dst_folder.id IS NOT NULL THEN PERFORM geogridfs_fs_error('EISDIR', format('%s is a folder', p_to)); END IF;
    IF dst_file.id IS NOT NULL THEN
      SELECT * INTO o_replaced FROM geogridfs_unlink_file(p_to, p_dst_nodes, array_fill(p_to, ARRAY[coalesce(array_length(p_dst_nodes, 1), 0)]),
                                                          p_now, p_channel, p_replaced_payload);
    END IF;
    parent := geogridfs_ensure_folder(geogridfs_parent_of(p_to), p_now);
    INSERT INTO files (path, folder_id, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, checksum, symlink_target,
                       class, replica_target, backup_target, version, deleted_at, renamed_to)
    SELECT f.path, NULL, f.kind, f.size, f.mode, f.uid, f.gid, f.atime_us, f.mtime_us, f.ctime_us, f.checksum, f.symlink_target,
           f.class, f.replica_target, f.backup_target, f.version, now(), f.id
      FROM files f WHERE f.deleted_at IS NULL AND f.id = src_file.id;
    UPDATE files SET path = p_to, folder_id = parent.id, ctime_us = p_now WHERE id = src_file.id;
    UPDATE replicas r SET path = p_to FROM unnest(p_nodes, p_node_paths) AS h(node_id, path)
     WHERE r.file_id = src_file.id AND r.node_id = h.node_id AND r.path = h.path;
    PERFORM pg_notify(p_channel, p_file_payload);
    o_kind := 'file';
    RETURN;
  END IF;

  -- a folder and its subtree
  IF dst_file.id IS NOT NULL THEN PERFORM geogridfs_fs_error('ENOTDIR', format('%s is not a folder', p_to)); END IF;
  IF dst_folder.id IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM folders WHERE parent_id = dst_folder.id) OR EXISTS (SELECT 1 FROM files WHERE folder_id = dst_folder.id AND deleted_at IS NULL) THEN
      PERFORM geogridfs_fs_error('ENOTEMPTY', format('%s is not empty', p_to));
    END IF;
    DELETE FROM folders WHERE id = dst_folder.id;
  END IF;
  parent := geogridfs_ensure_folder(geogridfs_parent_of(p_to), p_now);
  lo := p_from || '/';
  hi := p_from || '0';
  cut := length(p_from) + 1; -- characters, as substr() counts them
  INSERT INTO files (path, folder_id, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, checksum, symlink_target,
                     class, replica_target, backup_target, version, deleted_at, renamed_to)
  SELECT f.path, NULL, f.kind, f.size, f.mode, f.uid, f.gid, f.atime_us, f.mtime_us, f.ctime_us, f.checksum, f.symlink_target,
         f.class, f.replica_target, f.backup_target, f.version, now(), f.id
    FROM files f WHERE f.deleted_at IS NULL AND f.path >= lo AND f.path < hi;
  UPDATE replicas r SET path = p_to || substr(r.path, cut)
    FROM files f WHERE f.id = r.file_id AND f.deleted_at IS NULL AND f.path >= lo AND f.path < hi
     AND r.node_id = ANY (p_nodes) AND r.path = f.path;
  UPDATE files SET path = p_to || substr(path, cut), ctime_us = p_now WHERE deleted_at IS NULL AND path >= lo AND path < hi;
  UPDATE folders SET path = p_to || substr(path, cut) WHERE path >= lo AND path < hi;
  UPDATE folders SET path = p_to, parent_id = parent.id, ctime_us = p_now WHERE id = src_folder.id;
  PERFORM pg_notify(p_channel, p_folder_payload);
  o_kind := 'folder';
END $$;

-- chmod/chown/utimens of a live file, else of a folder (folders keep no
-- atime); false when metadata does not know the path (nothing announced).
CREATE FUNCTION geogridfs_set_attributes(p_path text, p_mode integer, p_uid integer, p_gid integer, p_mtime_us bigint, p_atime_us bigint,
                                         p_now bigint, p_channel text, p_payload text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  UPDATE files SET mode = coalesce(p_mode & 4095, mode), uid = coalesce(p_uid, uid), gid = coalesce(p_gid, gid),
         mtime_us = coalesce(p_mtime_us, mtime_us), atime_us = coalesce(p_atime_us, atime_us), ctime_us = p_now
   WHERE path = p_path AND deleted_at IS NULL;
  IF NOT FOUND THEN
    UPDATE folders SET mode = coalesce(p_mode & 4095, mode), uid = coalesce(p_uid, uid), gid = coalesce(p_gid, gid),
           mtime_us = coalesce(p_mtime_us, mtime_us), ctime_us = p_now
     WHERE path = p_path;
    IF NOT FOUND THEN RETURN false; END IF;
  END IF;
  PERFORM pg_notify(p_channel, p_payload);
  RETURN true;
END $$;
