/**
 * Found by the soak under I/O load: a file written and closed successfully
 * was lost. The mount's 1-second intent resolver saw the publish intent of a
 * close that was still running (the intent entered `pending` before its line
 * was written, and was marked in flight only after), found metadata without
 * the new version (the commit had not landed yet), and removed the temp: the
 * commit then registered a version whose bytes no longer existed ("new
 * version registered but not yet in place on the node", ENOENT), and the
 * file's only copy was gone. An intent is now owned by its commit from the
 * moment it is added until done() or release().
 */
import t from 'tap';
import path from 'node:path';
import { IntentLog } from '../../src/fs/intents.js';
import { scratchDir } from '../helpers/db.js';

t.test('an intent being added is never handed to the resolver', async (t) => {
  const dir = await scratchDir('intents-');
  const log = new IntentLog(path.join(dir, 'm.intents'));
  const adding = log.add({ node: 'n1', tmp: '/.ggfs-tmp/w-1', path: '/a', checksum: 'c', size: 1 });
  // the line is not written yet: this is the moment the resolver used to strike
  t.equal(log.pending.size, 1, 'pending at once');
  t.equal(log.unowned, 0, 'but owned by its commit');
  const intent = await adding;
  t.ok(log.isOwned(intent.id), 'still owned after the line is written');
  log.release(intent.id);
  t.equal(log.unowned, 1, 'a released intent (its publish failed) is the resolver\'s');
  t.notOk(log.isOwned(intent.id));
  await log.done(intent.id);
  t.equal(log.pending.size, 0);
  t.equal(log.unowned, 0);
  await log.close();
});

t.test('a previous run\'s intents are the resolver\'s at start', async (t) => {
  const dir = await scratchDir('intents-');
  const file = path.join(dir, 'm.intents');
  const first = new IntentLog(file);
  await first.add({ node: 'n1', tmp: '/.ggfs-tmp/w-2', path: '/b', checksum: 'c', size: 2 });
  await first.close(); // a crash: never done
  const second = new IntentLog(file);
  const left = await second.load();
  t.equal(left.length, 1);
  t.equal(second.unowned, 1, 'nobody owns it: the resolver finishes it');
  t.notOk(second.isOwned(left[0]!.id));
  await second.close();
});
