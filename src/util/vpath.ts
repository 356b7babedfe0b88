/**
 * Virtual paths: the names of entries inside the GeoGridFS tree ('/', '/a/b').
 * One normaliser for every entry point (FUSE, API, walk), so that nothing
 * outside the tree is ever reachable through a path.
 */
import path from 'node:path';

export const NAME_MAX = 255;
export const PATH_MAX = 4096;

export class BadPathError extends Error {
  readonly errno: 'EINVAL' | 'ENAMETOOLONG';
  constructor(message: string, errno: 'EINVAL' | 'ENAMETOOLONG' = 'EINVAL') {
    super(message);
    this.name = 'BadPathError';
    this.errno = errno;
  }
}

/**
 * Normalise a virtual path strictly: must be absolute, no NUL, no '.' or '..'
 * components, no empty components except a trailing slash (dropped);
 * components ≤ 255 bytes, whole path ≤ 4096 bytes. Throws BadPathError.
 */
export function normalizeVirtualPath(p: string): string {
  if (typeof p !== 'string' || !p.startsWith('/')) throw new BadPathError(`not an absolute path: ${JSON.stringify(p)}`);
  if (p.includes('\0')) throw new BadPathError('path contains NUL');
  if (p === '/') return '/';
  const parts = p.split('/').slice(1);
  if (parts[parts.length - 1] === '') parts.pop();
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') throw new BadPathError(`path has an empty, "." or ".." component: ${JSON.stringify(p)}`);
    if (Buffer.byteLength(part) > NAME_MAX) throw new BadPathError('a path component is longer than 255 bytes', 'ENAMETOOLONG');
  }
  const out = '/' + parts.join('/');
  if (Buffer.byteLength(out) > PATH_MAX) throw new BadPathError('path longer than 4096 bytes', 'ENAMETOOLONG');
  return out;
}

/** Parent of a normalised virtual path ('/' for top-level entries and for '/'). */
export function parentOf(vpath: string): string {
  if (vpath === '/') return '/';
  const i = vpath.lastIndexOf('/');
  return i === 0 ? '/' : vpath.slice(0, i);
}

/** Last component of a normalised virtual path ('' for '/'). */
export function baseName(vpath: string): string {
  return vpath === '/' ? '' : vpath.slice(vpath.lastIndexOf('/') + 1);
}

export function joinVirtual(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Every ancestor folder of a path, root first, excluding the path itself. */
export function ancestorsOf(vpath: string): string[] {
  const out: string[] = [];
  let p = parentOf(vpath);
  while (p !== '/') {
    out.unshift(p);
    p = parentOf(p);
  }
  out.unshift('/');
  return vpath === '/' ? [] : out;
}

/**
 * The index range [lo, hi) that holds exactly the strict descendants of a
 * folder under byte-wise (COLLATE "C") ordering: '/a/' <= p < '/a0'.
 */
export function subtreeRange(folder: string): [string, string] {
  if (folder === '/') return ['/', '0'];
  return [folder + '/', folder + '0'];
}

/**
 * Where a virtual path lives under a node's root folder. The result is always
 * inside `root` (the virtual path is normalised first).
 */
export function onNode(root: string, vpath: string): string {
  const v = normalizeVirtualPath(vpath);
  const full = path.join(root, v);
  if (full !== root && !full.startsWith(root.endsWith('/') ? root : root + '/')) throw new BadPathError(`path escapes the node root: ${vpath}`);
  return full;
}
