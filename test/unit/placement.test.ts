import t from 'tap';
import { pick, rank, weight } from '../../src/replicator/rendezvous.js';
import { plan, type PlacementNode, type PlacementFile } from '../../src/replicator/placement.js';

const node = (id: number, state: PlacementNode['state'] = 'active', freeBytes: number | null = 1e12, alive = true): PlacementNode => ({ id, name: `n${id}`, state, freeBytes, alive });

t.test('rendezvous: deterministic, balanced, stable when a node leaves', async (t) => {
  const nodes = [1, 2, 3, 4].map((i) => node(i));
  t.equal(weight(42, 'n1'), weight(42, 'n1'));
  t.ok(weight(42, 'n1') >= 0 && weight(42, 'n1') < 1);
  t.same(rank(7, nodes), rank(7, [...nodes].reverse()), 'order of input does not matter');
  const firsts: Record<string, number> = {};
  let moved = 0;
  for (let k = 1; k <= 4000; k++) {
    const top = pick(k, nodes, 2);
    firsts[top[0]!.name] = (firsts[top[0]!.name] ?? 0) + 1;
    const without = pick(k, nodes.filter((n) => n.id !== 4), 2);
    if (!top.some((n) => n.id === 4)) {
      if (without.map((n) => n.id).join() !== top.map((n) => n.id).join()) moved++;
    }
  }
  for (const n of nodes) t.ok(firsts[n.name]! > 800 && firsts[n.name]! < 1200, `balanced first choice for ${n.name}: ${firsts[n.name]}`);
  t.equal(moved, 0, 'removing a node never moves files it did not hold');
});

const file = (replicas: { nodeId: number; version: number }[], target = 2, version = 1): PlacementFile => ({ id: 99, version, size: 10, replicaTarget: target, replicas });

t.test('plan: exactly `need` nodes are chosen and agree', async (t) => {
  const nodes = [1, 2, 3, 4].map((i) => node(i));
  const f = file([{ nodeId: 1, version: 1 }], 3);
  const chosen = nodes.filter((n) => plan(f, nodes, n.id, { minFreeBytes: 0 }).copyHere).map((n) => n.id);
  t.equal(chosen.length, 2, 'two more copies, by two nodes');
  t.notOk(chosen.includes(1), 'not the holder');
  t.same(plan(f, nodes, 2, { minFreeBytes: 0 }).chosen.map((n) => n.id), chosen.sort((a, b) => plan(f, nodes, 2, { minFreeBytes: 0 }).chosen.findIndex((n) => n.id === a) - plan(f, nodes, 2, { minFreeBytes: 0 }).chosen.findIndex((n) => n.id === b)));
  t.ok(plan(file([{ nodeId: 1, version: 1 }, { nodeId: 2, version: 1 }]), nodes, 3, { minFreeBytes: 0 }).done, 'at target: done');
});

t.test('plan: eligibility (space, heartbeat, state), stale first, drain, dead, trim', async (t) => {
  const nodes = [node(1), node(2, 'active', 5), node(3, 'active', 1e12, false), node(4, 'readonly'), node(5, 'active')];
  const f = file([{ nodeId: 1, version: 1 }], 3);
  const p = plan(f, nodes, 5, { minFreeBytes: 100 });
  t.same(p.chosen.map((n) => n.id), [5], 'only n5 can take it: n2 full, n3 silent, n4 readonly');
  t.equal(p.need, 2);
  t.notOk(p.stuck);
  t.ok(plan(f, [node(1), node(2, 'readonly')], 2, { minFreeBytes: 0 }).stuck, 'no eligible node: stuck');

  const stale = file([{ nodeId: 1, version: 2 }, { nodeId: 3, version: 1 }], 2, 2);
  const four = [1, 2, 3, 4].map((i) => node(i));
  t.same(plan(stale, four, 3, { minFreeBytes: 0 }).chosen.map((n) => n.id), [3], 'the stale holder refreshes its copy');
  t.equal(plan(file([{ nodeId: 1, version: 2 }, { nodeId: 2, version: 2 }, { nodeId: 3, version: 1 }], 2, 2), four, 3, { minFreeBytes: 0 }).dropHere, 'stale', 'surplus stale copy is dropped');

  const drainNodes = [node(1, 'drain'), node(2), node(3)];
  const d = file([{ nodeId: 1, version: 1 }, { nodeId: 2, version: 1 }]);
  t.equal(plan(d, drainNodes, 1, { minFreeBytes: 0 }).dropHere, null, 'drain keeps its copy while the file is under target');
  t.ok(plan(d, drainNodes, 3, { minFreeBytes: 0 }).copyHere, 'another node copies it');
  const d2 = file([{ nodeId: 1, version: 1 }, { nodeId: 2, version: 1 }, { nodeId: 3, version: 1 }]);
  t.equal(plan(d2, drainNodes, 1, { minFreeBytes: 0 }).dropHere, 'drain', 'then drain drops it');
  t.notOk(plan(d2, drainNodes, 1, { minFreeBytes: 0 }).done, 'not done while the drain copy is there');

  const deadNodes = [node(1, 'dead'), node(2), node(3)];
  const dd = file([{ nodeId: 1, version: 1 }, { nodeId: 2, version: 1 }]);
  t.equal(plan(dd, deadNodes, 2, { minFreeBytes: 0 }).kept, 1, 'dead replicas do not count');
  t.ok(plan(dd, deadNodes, 3, { minFreeBytes: 0 }).copyHere);

  const over = file([{ nodeId: 1, version: 1 }, { nodeId: 2, version: 1 }, { nodeId: 3, version: 1 }], 1);
  const three = [1, 2, 3].map((i) => node(i));
  t.ok(plan(over, three, 1, { minFreeBytes: 0 }).over);
  t.ok(three.every((n) => plan(over, three, n.id, { minFreeBytes: 0 }).dropHere === null), 'no trim unless asked');
  const trimmers = three.filter((n) => plan(over, three, n.id, { minFreeBytes: 0, trim: true }).dropHere === 'trim');
  t.equal(trimmers.length, 2, 'with trim, exactly the surplus holders drop');
});

t.test('plan: a readonly node serves but never drops', async (t) => {
  const nodes = [node(1, 'readonly'), node(2), node(3)];
  const stale = file([{ nodeId: 1, version: 1 }, { nodeId: 2, version: 2 }, { nodeId: 3, version: 2 }], 2, 2);
  t.equal(plan(stale, nodes, 1, { minFreeBytes: 0 }).dropHere, null);
  const over = file([{ nodeId: 1, version: 1 }, { nodeId: 2, version: 1 }, { nodeId: 3, version: 1 }], 1);
  t.equal(plan(over, nodes, 1, { minFreeBytes: 0, trim: true }).dropHere, null);
  t.equal(plan(file([{ nodeId: 1, version: 1 }], 2), nodes, 1, { minFreeBytes: 0 }).copyHere, false, 'takes nothing new');
});
