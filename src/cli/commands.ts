/**
 * The table of top-level commands, one file each.
 */
import type { Command } from './command.js';
import { dbCommand } from './db.js';
import { nodeCommand } from './node.js';
import { backupNodeCommand } from './backup-node.js';
import { classesCommand } from './classes.js';
import { statusCommand } from './status.js';
import { doctorCommand } from './doctor.js';
import { mountCommand } from './mount.js';
import { upCommand } from './up.js';
import { apiCommand } from './api.js';
import { backupCommand } from './backup.js';
import { replicatorCommand } from './replicator.js';
import { fsckCommand } from './fsck.js';

export const COMMANDS: Command<any>[] = [dbCommand, nodeCommand, backupNodeCommand, classesCommand, statusCommand, doctorCommand, mountCommand, upCommand, apiCommand, backupCommand, replicatorCommand, fsckCommand];
