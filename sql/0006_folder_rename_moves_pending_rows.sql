-- GeoGridFS schema, version 6: a folder rename moves every replica row under
-- the folder on the nodes that renamed it.
--
-- The mount renames a folder on each node as one node rename: whatever the
-- node holds under it moves, including bytes a replica row names at a path
-- other than its file's (a pending rename, a pending delete). Version 3 moved
-- only the rows at their file's path: a pending row kept naming the old
-- folder, where its node had nothing any more (copies from it failed with
-- ENOENT, its pending rename could not be applied, and the copy it counted
-- was not where metadata said). Found by the soak (seed 2, full form).

CREATE OR REPLACE FUNCTION geogridfs_rename(p_from text, p_to text, p_nodes integer[], p_node_paths text[], p_dst_nodes integer[], p_now bigint,
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
  -- every node path under the folder on a handled node moved with it: rows
  -- at their file's path, pending renames and pending deletes alike
  UPDATE replicas r SET path = p_to || substr(r.path, cut)
   WHERE r.node_id = ANY (p_nodes) AND r.path >= lo AND r.path < hi;
  UPDATE files SET path = p_to || substr(path, cut), ctime_us = p_now WHERE deleted_at IS NULL AND path >= lo AND path < hi;
  UPDATE folders SET path = p_to || substr(path, cut) WHERE path >= lo AND path < hi;
  UPDATE folders SET path = p_to, parent_id = parent.id, ctime_us = p_now WHERE id = src_folder.id;
  PERFORM pg_notify(p_channel, p_folder_payload);
  o_kind := 'folder';
END $$;
