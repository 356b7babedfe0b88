/** The one place FUSE paths become virtual paths (ENAMETOOLONG / EINVAL on bad ones). */
import { normalizeVirtualPath } from '../../util/vpath.js';

export const vp = (p: string): string => normalizeVirtualPath(p);
