/**
 * File classes: the first configured pattern matching a virtual path decides
 * its class, replica target and backup target.
 */
import picomatch from 'picomatch';
import type { FileClass } from '../config/schema.js';

export interface Classification {
  class: string;
  replicaTarget: number;
  backupTarget: number;
}

export type Classifier = (vpath: string) => Classification;

const FALLBACK: Classification = { class: 'default', replicaTarget: 2, backupTarget: 1 };

/** Build a classifier for the ordered class list (patterns match the path without its leading '/'). */
export function makeClassifier(classes: readonly FileClass[]): Classifier {
  const matchers = classes.map((c) => ({ c, m: picomatch(c.pattern, { dot: true }) }));
  return (vpath: string) => {
    const rel = vpath.replace(/^\/+/, '');
    for (const { c, m } of matchers) {
      if (m(rel)) return { class: c.name, replicaTarget: c.replicaTarget, backupTarget: c.backupTarget };
    }
    const last = classes[classes.length - 1];
    return last ? { class: last.name, replicaTarget: last.replicaTarget, backupTarget: last.backupTarget } : FALLBACK;
  };
}
