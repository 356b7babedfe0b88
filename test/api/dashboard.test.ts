/**
 * The dashboard in a real headless Chromium: loads with no console errors,
 * shows the node names and the numbers that are in the database, refreshes,
 * and fits a phone screen. Screenshots go to the scratch folder.
 */
import { pick } from '../../src/replicator/rendezvous.js';
import t from 'tap';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { makeGrid } from './grid-fixture.js';
import { scratchDir } from '../helpers/db.js';
import { recordProblem } from '../../src/meta/problems.js';
import { recordHeld } from '../../src/meta/backups.js';
import { addBackupNode } from '../../src/meta/backup-nodes.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

t.test('dashboard shows the grid from the database', async (t) => {
  const g = await makeGrid(t, { nodes: ['alpha-node', 'beta-node', 'gamma-node'] });
  // (as a replicator's heartbeat leaves them)
  const beat = (name: string, cap: number, free: number) => g.store.query('UPDATE nodes SET capacity_bytes = $2::bigint, free_bytes = $3::bigint, heartbeat_at = now() WHERE name = $1', [name, cap, free]);
  await beat('alpha-node', 4 * 2 ** 40, 3 * 2 ** 40);
  await beat('beta-node', 2 * 2 ** 40, 2 ** 39);
  await g.store.query(`UPDATE nodes SET state = 'readonly' WHERE name = 'gamma-node'`);
  const held = [];
  const ids: number[] = [];
  for (let i = 0; i < 7; i++) {
    const f = await g.putFile(`/photos/p${i}.jpg`, `photo ${i}`, { nodes: i < 5 ? ['alpha-node', 'beta-node'] : ['alpha-node'] });
    ids.push(f.id);
    if (i < 4) held.push({ id: f.id, version: f.version, checksum: f.checksum });
  }
  await recordHeld(g.store, g.backupNode.id, held);
  await addBackupNode(g.store, 'offsite-two');
  await recordProblem(g.store, { kind: 'checksum-mismatch', nodeId: g.nodeRows[1]!.id, path: '/photos/p3.jpg', detail: 'sha256 differs on beta-node' });
  await g.get('/api/v1/feed?after=0');
  await g.server.ctx.requestLog.flush();

  const shots = await scratchDir('dash-');
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  } catch (err) {
    t.fail(`cannot start Chromium at ${CHROMIUM}: ${(err as Error).message}`);
    return;
  }
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') errors.push(`${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (r) => errors.push(`requestfailed: ${r.url()}`));
  const resp = await page.goto(g.base + '/');
  t.equal(resp?.status(), 200);
  await page.waitForSelector('[data-node="alpha-node"]');
  const text = await page.innerText('body');
  for (const n of ['alpha-node', 'beta-node', 'gamma-node', 'offsite1', 'offsite-two']) t.match(text, n, `shows ${n}`);
  t.match(text, /readonly/, 'node state');
  t.match(await page.innerText('[data-key="files"] .v'), /^7$/, 'files count from the database');
  t.match(await page.innerText('[data-node="alpha-node"] .detail'), /1\.0 TiB used of 4\.0 TiB \(3\.0 TiB free\) · 7 files held/, 'alpha space and files');
  t.match(await page.innerText('[data-node="beta-node"] .detail'), /5 files held/);
  t.match(await page.innerText('[data-class="default"] .detail'), /7 files \(49 B\): 2 under \(14 B\), 5 at \(35 B\), 0 over target \(0 B\)/, 'compliance per class, counts and bytes');
  // offsite1 should hold only its rendezvous share of the 7 files (the other goes to offsite-two)
  const mine = ids.filter((id) => pick(id, [{ name: 'offsite1' }, { name: 'offsite-two' }], 1)[0]!.name === 'offsite1');
  const mineHeld = held.filter((h) => mine.includes(h.id)).length;
  t.ok(mine.length > 0 && mine.length < 7, 'offsite1 has a share, not everything');
  t.match(await page.innerText('[data-backup-node="offsite1"] .detail'), new RegExp(`^${mineHeld} of ${mine.length} files held .* behind ${mine.length - mineHeld} files`), 'backup progress counts only the node\'s share');
  t.match(text, /checksum-mismatch/, 'recent problems');
  t.match(text, /GET \/api\/v1\/feed\s+200\s+[\d.]+ (B|KiB)/, 'recent activity with status and bytes');
  t.notMatch(text, /feed\s+200\s+0 B/, 'the feed answer has bytes');
  t.equal(await page.locator('svg.bar').count(), 5, 'bars drawn as inline SVG (2 nodes with space, 1 class, 2 backup nodes)');
  t.ok((await page.locator('svg.chart rect').count()) >= 1, 'activity chart has a column');
  await page.screenshot({ path: path.join(shots, 'desktop.png'), fullPage: true });

  // it refreshes by itself
  await g.putFile('/photos/new.jpg', 'new');
  await page.waitForFunction(() => document.querySelector('[data-key="files"] .v')?.textContent === '8', undefined, { timeout: 15_000 });
  t.pass('refreshed to 8 files without a reload');

  // phone: no horizontal scrolling of the page
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  phone.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  await phone.goto(g.base + '/');
  await phone.waitForSelector('[data-node="alpha-node"]');
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  t.ok(overflow <= 0, `fits a phone (overflow ${overflow}px)`);
  await phone.screenshot({ path: path.join(shots, 'phone.png'), fullPage: true });
  t.same(errors, [], 'no console errors');
  t.comment(`screenshots in ${shots}`);
});
