/**
 * Pure parsers of the API: Range headers, hour windows, cursors and paths.
 */
import t from 'tap';
import { parseRange } from '../../src/api/routes/content.js';
import { parseHourRange, secondsUntilAllowed } from '../../src/api/throttle.js';
import { parseCursor, parsePath } from '../../src/api/routes/common.js';
import type { ApiError } from '../../src/api/errors.js';

/** The status (and headers) of the ApiError `fn` throws. */
function thrown(fn: () => unknown): { statusCode?: number; headers?: Record<string, string> } {
  try {
    fn();
  } catch (err) {
    return err as ApiError;
  }
  return {};
}

t.test('Range', async (t) => {
  t.same(parseRange('bytes=0-9', 100), [0, 9]);
  t.same(parseRange('bytes=90-', 100), [90, 99]);
  t.same(parseRange('bytes=90-500', 100), [90, 99], 'end clamped to the size');
  t.same(parseRange('bytes=-10', 100), [90, 99]);
  t.same(parseRange('bytes=-500', 100), [0, 99]);
  for (const bad of ['bytes=', 'bytes=-', 'bytes=a-b', 'bytes=1-2,4-5', 'bits=0-1', 'bytes=5-1', 'bytes=--1', ' bytes = 1-2', 'bytes=99999999999999999-']) {
    t.equal(thrown(() => parseRange(bad, 100)).statusCode, 400, `${JSON.stringify(bad)} is a 400`);
  }
  t.same(thrown(() => parseRange('bytes=100-', 100)).headers, { 'content-range': 'bytes */100' });
  t.equal(thrown(() => parseRange('bytes=100-', 100)).statusCode, 416);
  t.equal(thrown(() => parseRange('bytes=-0', 100)).statusCode, 416);
});

t.test('allowed hours', async (t) => {
  t.same(parseHourRange('[0,6)'), [0, 6]);
  t.same(parseHourRange('[8,18)'), [8, 18]);
  t.equal(parseHourRange(null), null);
  const at = (h: number, m = 0) => new Date(2026, 0, 1, h, m, 0);
  t.equal(secondsUntilAllowed([0, 6], at(3)), 0);
  t.equal(secondsUntilAllowed([0, 6], at(6)), 18 * 3600, 'from 06:00 until midnight');
  t.equal(secondsUntilAllowed([8, 18], at(7, 30)), 1800);
  t.equal(secondsUntilAllowed([8, 18], at(20)), 12 * 3600);
  t.equal(secondsUntilAllowed(null, at(12)), 0, 'no window: any time');
});

t.test('cursors and paths', async (t) => {
  t.equal(parseCursor(undefined), 0);
  t.equal(parseCursor('0'), 0);
  t.equal(parseCursor('123456'), 123456);
  for (const bad of ['-1', '01', '1.5', 'abc', '1e3', '99999999999999999', '', ' 1']) t.throws(() => parseCursor(bad), { code: 'GGFS_BAD_CURSOR' }, JSON.stringify(bad));
  t.equal(parsePath('/a/b/'), '/a/b');
  for (const bad of ['a', '/a/../b', '/..', '/a/./b', '/a\0b', '//a', '']) t.throws(() => parsePath(bad), { code: 'GGFS_BAD_PATH' }, JSON.stringify(bad));
});
