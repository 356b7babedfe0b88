import t from 'tap';
import { normalizeVirtualPath, parentOf, baseName, ancestorsOf, subtreeRange, onNode, BadPathError } from '../../src/util/vpath.js';
import { makeClassifier } from '../../src/util/classify.js';

t.test('normalizeVirtualPath accepts clean paths and rejects escapes', async (t) => {
  t.equal(normalizeVirtualPath('/'), '/');
  t.equal(normalizeVirtualPath('/a/b/'), '/a/b');
  t.equal(normalizeVirtualPath('/ä b/c'), '/ä b/c');
  for (const bad of ['', 'a/b', '/a/../b', '/..', '/a/./b', '/a//b', '/a\0b']) {
    t.throws(() => normalizeVirtualPath(bad), BadPathError, JSON.stringify(bad));
  }
  t.throws(() => normalizeVirtualPath('/' + 'x'.repeat(256)), new BadPathError('a path component is longer than 255 bytes', 'ENAMETOOLONG'));
  t.equal(normalizeVirtualPath('/' + 'x'.repeat(255)).length, 256);
});

t.test('path helpers', async (t) => {
  t.equal(parentOf('/a/b'), '/a');
  t.equal(parentOf('/a'), '/');
  t.equal(baseName('/a/b'), 'b');
  t.same(ancestorsOf('/a/b/c'), ['/', '/a', '/a/b']);
  t.same(subtreeRange('/a'), ['/a/', '/a0']);
  t.ok('/a/zzz' >= '/a/' && '/a/zzz' < '/a0', 'descendant in range');
  t.notOk('/ab' >= '/a/' && '/ab' < '/a0', 'sibling with common prefix outside range');
  t.equal(onNode('/srv/n1', '/a/b'), '/srv/n1/a/b');
  t.throws(() => onNode('/srv/n1', '/../etc/passwd'));
});

t.test('classifier: first match wins, catch-all last', async (t) => {
  const c = makeClassifier([
    { name: 'originals', pattern: 'photos/**/*.jpg', replicaTarget: 3, backupTarget: 2 },
    { name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 1 },
  ]);
  t.same(c('/photos/2020/x.jpg'), { class: 'originals', replicaTarget: 3, backupTarget: 2 });
  t.same(c('/photos/x.png'), { class: 'default', replicaTarget: 2, backupTarget: 1 });
  t.same(c('/.hidden/x'), { class: 'default', replicaTarget: 2, backupTarget: 1 });
});
