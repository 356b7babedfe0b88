// GeoGridFS dashboard: polls /api/v1/dashboard and renders with DOM calls
// (no innerHTML of data, no external scripts). Charts are inline SVG.
'use strict';
(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  function bytes(n) {
    if (n === null || n === undefined) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i && n < 10 ? n.toFixed(1) : Math.round(n)) + ' ' + u[i];
  }
  function num(n) { return Number(n).toLocaleString('en-US'); }
  function age(sec) {
    if (sec === null || sec === undefined) return 'never';
    if (sec < 120) return Math.round(sec) + ' s ago';
    if (sec < 7200) return Math.round(sec / 60) + ' min ago';
    if (sec < 172800) return Math.round(sec / 3600) + ' h ago';
    return Math.round(sec / 86400) + ' d ago';
  }
  // a horizontal stacked bar: parts = [{value, color, title}]
  function bar(parts, total) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'bar');
    svg.setAttribute('viewBox', '0 0 100 10');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    const bg = document.createElementNS(SVG, 'rect');
    bg.setAttribute('width', '100'); bg.setAttribute('height', '10'); bg.setAttribute('rx', '1.5'); bg.setAttribute('fill', '#eef1f4');
    svg.append(bg);
    let x = 0;
    const sum = total || parts.reduce((a, p) => a + p.value, 0) || 1;
    for (const p of parts) {
      const w = (100 * p.value) / sum;
      if (w <= 0) continue;
      const r = document.createElementNS(SVG, 'rect');
      r.setAttribute('x', String(x)); r.setAttribute('width', String(w)); r.setAttribute('height', '10'); r.setAttribute('fill', p.color);
      const t = document.createElementNS(SVG, 'title'); t.textContent = p.title; r.append(t);
      svg.append(r);
      x += w;
    }
    svg.setAttribute('aria-label', parts.map((p) => p.title).join(', '));
    return svg;
  }
  function table(headers, rows, pathCol) {
    if (!rows.length) return el('div', { class: 'muted' }, 'none');
    const t = el('table', {}, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', {}, h)))));
    const tb = el('tbody');
    for (const r of rows) tb.append(el('tr', {}, ...r.map((c, i) => el('td', i === pathCol ? { class: 'path' } : {}, c))));
    t.append(tb);
    return t;
  }
  function fill(id, ...nodes) { const e = $(id); e.replaceChildren(...nodes); }
  // bytes served per minute over the last hour, as columns (red cap = minutes with errors)
  function activityChart(rows) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'chart'); svg.setAttribute('viewBox', '0 0 600 80'); svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    const now = Math.floor(Date.now() / 60000);
    const byMin = new Map(rows.map((r) => [Math.floor(new Date(r.minute).getTime() / 60000), r]));
    let max = 1;
    for (const r of rows) max = Math.max(max, Number(r.bytes));
    let total = 0, reqs = 0;
    for (let i = 0; i < 60; i++) {
      const r = byMin.get(now - 59 + i);
      if (!r) continue;
      total += Number(r.bytes); reqs += Number(r.requests);
      const h = Math.max(2, (76 * Number(r.bytes)) / max);
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', String(i * 10 + 1)); rect.setAttribute('width', '8'); rect.setAttribute('y', String(80 - h)); rect.setAttribute('height', String(h));
      rect.setAttribute('fill', Number(r.errors) ? 'var(--warn)' : 'var(--used)');
      const t = document.createElementNS(SVG, 'title');
      t.textContent = `${new Date(r.minute).toLocaleTimeString()}: ${num(r.requests)} requests, ${bytes(Number(r.bytes))}, ${num(r.errors)} errors`;
      rect.append(t); svg.append(rect);
    }
    svg.setAttribute('aria-label', `last hour: ${num(reqs)} requests, ${bytes(total)} served`);
    return el('div', {}, svg, el('div', { class: 'muted axis' }, el('span', {}, '60 min ago'), el('span', {}, 'bytes served per minute'), el('span', {}, 'now')));
  }

  function render(d) {
    const s = d.stats;
    const totalUnder = s.under, totalAt = s.at, totalOver = s.over;
    fill('summary', `${num(s.files)} files · ${bytes(s.bytes)} · ${s.nodes.length} nodes · ${totalUnder ? num(totalUnder) + ' under target' : 'all at target'}`);
    fill('updated', 'updated ' + new Date(d.generatedAt).toLocaleTimeString());
    fill('totals',
      ...[['files', num(s.files)], ['bytes', bytes(s.bytes)], ['folders', num(s.folders)], ['under target', num(totalUnder)],
          ['at target', num(totalAt)], ['over target', num(totalOver)], ['queued', num(s.queue)], ['open problems', num(s.openProblems)]]
        .map(([k, v]) => el('div', { class: 'card', 'data-key': k }, el('div', { class: 'v' }, v), el('div', { class: 'k' }, k))));

    fill('nodes', ...(s.nodes.length ? s.nodes.map((n) => {
      const cap = n.capacityBytes, free = n.freeBytes;
      const used = cap !== null && free !== null ? cap - free : null;
      const stale = n.heartbeatAgeSec === null || n.heartbeatAgeSec > 300;
      return el('div', { class: 'row node', 'data-node': n.name },
        el('div', { class: 'name' }, n.name, el('span', { class: 'badge b-' + n.state }, n.state)),
        cap ? bar([{ value: used, color: 'var(--used)', title: `used ${bytes(used)}` }, { value: free, color: 'var(--free)', title: `free ${bytes(free)}` }], cap)
            : el('div', { class: 'muted' }, 'no space report yet'),
        el('div', { class: 'detail' },
          cap ? `${bytes(used)} used of ${bytes(cap)} (${bytes(free)} free) · ` : '',
          `${num(n.files)} files held (${bytes(n.bytes)}) · heartbeat `,
          el('span', stale ? { class: 'error' } : {}, age(n.heartbeatAgeSec))));
    }) : [el('div', { class: 'muted' }, 'no storage nodes registered')]));

    const cb = new Map((d.classBytes || []).map((x) => [x.class, x]));
    fill('classes', ...(s.classes.length ? s.classes.map((c) => {
      const b = cb.get(c.class) || { atBytes: 0, overBytes: 0 };
      return el('div', { class: 'row cls', 'data-class': c.class },
        el('div', { class: 'name' }, c.class),
        bar([{ value: c.under, color: 'var(--bad)', title: `under ${c.under}` }, { value: c.at, color: 'var(--ok)', title: `at ${c.at}` }, { value: c.over, color: 'var(--over)', title: `over ${c.over}` }]),
        el('div', { class: 'detail' }, `${num(c.files)} files (${bytes(c.bytes)}): ${num(c.under)} under (${bytes(c.underBytes)}), ${num(c.at)} at (${bytes(b.atBytes)}), ${num(c.over)} over target (${bytes(b.overBytes)})`));
    }) : [el('div', { class: 'muted' }, 'no files yet')]));

    fill('backups', ...(s.backupNodes.length ? s.backupNodes.map((b) => {
      const want = b.wanted || 0;
      return el('div', { class: 'row bnode', 'data-backup-node': b.name },
        el('div', { class: 'name' }, b.name, el('span', { class: 'badge ' + (b.active ? 'b-ok' : 'b-revoked') }, b.active ? 'active' : 'revoked')),
        bar([{ value: b.held, color: 'var(--ok)', title: `held ${b.held}` }, { value: b.behindFiles, color: 'var(--warn)', title: `behind ${b.behindFiles}` }], Math.max(want, b.held + b.behindFiles)),
        el('div', { class: 'detail' }, `${num(b.held)} of ${num(want)} files held (${bytes(b.heldBytes)}) · behind ${num(b.behindFiles)} files / ${bytes(b.behindBytes)} · last seen ${age(b.lastSeenAgeSec)}`));
    }) : [el('div', { class: 'muted' }, 'no backup nodes (geogridfs backup-node add NAME)')]));

    fill('problems', table(['when', 'kind', 'where', 'path', 'detail'], d.problems.map((p) => [
      new Date(p.createdAt).toLocaleString(), p.kind + (p.resolvedAt ? ' (resolved)' : ''), p.nodeName || p.backupNodeName || '', p.path || '', (p.detail || '').slice(0, 160)]), 3));
    fill('totals-hour', 'last hour: ' + (d.totals.length ? d.totals.map((t) => `${t.name || "dashboard/anonymous"}: ${num(t.requests)} request${Number(t.requests) === 1 ? "" : "s"}, ${bytes(t.bytes)}${t.errors ? ', ' + num(t.errors) + ' errors' : ''}`).join(' · ') : 'no API requests'));
    fill('activity-chart', activityChart(d.perMinute || []));
    fill('activity', table(['when', 'who', 'request', 'status', 'bytes', 'ms'], d.requests.map((r) => [
      new Date(r.at).toLocaleTimeString(), r.backupNodeName || r.remote || '', r.method + ' ' + r.route, r.status, bytes(r.bytes), r.durationMs])));
    fill('changes', table(['seq', 'path', 'change', 'size'], d.changes.map((c) => [c.seq, c.path, c.deleted ? 'deleted/renamed away' : 'version ' + c.version, bytes(c.size)]), 1));
  }

  async function refresh() {
    try {
      const r = await fetch('/api/v1/dashboard', { credentials: 'same-origin', cache: 'no-store' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      render(await r.json());
    } catch (err) {
      fill('updated', el('span', { class: 'error' }, 'cannot refresh: ' + err.message));
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
