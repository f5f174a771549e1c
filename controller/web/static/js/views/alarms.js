// Cảnh báo: open alarms of my area's clusters (cut speaker line, amplifier
// fault, mains off, offline…), who has seen them, and the ones that ended.
// On a controller without the alarms API it lists the clusters that are
// offline or out of sync, which the node list does report.

import { api, apiURL } from '../api.js';
import { t, has } from '../i18n.js';
import { h, fill, badge, fmtDateTime, errorBox, errorText, toast, alarmDetail, alarmSubject, refreshMs, clusterNames, fmtNumber } from '../ui.js';
import { nodeHealth } from './overview.js';

const REFRESH_MS = refreshMs(30000);
// LISTED is how many alarms, open and ended, newest first, the screen reads.
const LISTED = 500;

export async function render(ctx, main) {
  // Subscribe before reading the list, so no change falls between them:
  // a change that comes while the list is read (its answer may be older)
  // is noted and the list read again once shown.
  const src = new EventSource(apiURL('/alarms/stream'));
  let events = 0;
  let missed = false;
  let onChange = () => { missed = true; };
  src.addEventListener('alarm', () => {
    main.dataset.streamEvents = String(++events); // how many changes came live (tests read it)
    onChange();
  });
  // The stream fell behind (a sweep that opened thousands of alarms at
  // once) and lost changes: read the list again at once, not at the next
  // poll.
  src.addEventListener('resync', () => onChange());
  await new Promise((resolve) => {
    const done = () => { clearTimeout(timeout); resolve(); };
    const timeout = setTimeout(done, 3000);
    src.addEventListener('open', done, { once: true });
    src.addEventListener('error', done, { once: true });
  });
  let first;
  try {
    first = await api('GET', '/alarms', undefined, { limit: LISTED + 1 });
  } catch (err) {
    src.close();
    if (err.status !== 404) throw err;
    return fallback(ctx, main);
  }
  const body = h('div');
  fill(main, h('h1', {}, t('alarms.title')), body);
  // The clusters by name, as the cluster list shows them: read once, when
  // an alarm first names one.
  const clusters = { names: new Map(), read: false };
  const show = async (alarms) => {
    await clusterNames(alarms.map((a) => a.node), clusters, ctx.defaultArea());
    // One more than listed is read, to know when there are more: then
    // the open ones counted are only those among the newest, and the
    // heading says "at least".
    const more = alarms.length > LISTED;
    if (more) alarms = alarms.slice(0, LISTED);
    const open = alarms.filter((a) => !a.end);
    const ended = alarms.filter((a) => a.end).slice(0, 50);
    // On a phone each alarm is a card (app.css, table.cards), each value
    // under its heading and the acknowledge button on the screen.
    const head = [t('alarms.severity'), t('alarms.kind'), t('clusters.name'), t('common.time'), t('alarms.seen')];
    const cell = (i, ...kids) => h('td', { dataset: { label: head[i] } }, ...kids);
    const row = (a) => h('tr', { dataset: { alarm: a.id, kind: a.kind } },
      cell(0, badge(a.severity, 'severity.')),
      cell(1, has('alarm.' + a.kind) ? t('alarm.' + a.kind) : a.kind, alarmDetail(a) ? h('div', { class: 'hint' }, alarmDetail(a)) : null),
      cell(2, alarmSubject(a, clusters.names), h('div', { class: 'hint' }, ctx.areaName(a.area))),
      cell(3, fmtDateTime(a.start), a.end ? ` – ${fmtDateTime(a.end)}` : ''),
      cell(4, a.ack_by ? t('alarms.seen_by', { user: a.ack_by, time: fmtDateTime(a.ack_at) }) :
        !a.end && ctx.may('nodes.maintain') ? h('button', {
          type: 'button', class: 'secondary', onclick: async () => {
            // Another technician may have taken it since this screen
            // was drawn: the alarm keeps theirs, and the toast says so.
            try {
              const got = await api('POST', `/alarms/${encodeURIComponent(a.id)}/ack`);
              toast(got.ack_by && got.ack_by !== ctx.me.username ? t('alarms.acked_before', { user: got.ack_by, time: fmtDateTime(got.ack_at) }) : t('alarms.acked'));
              await reload();
            } catch (err) { toast(errorText(err), true); }
          },
        }, t('alarms.ack')) : '—'));
    const table = (list, id) => h('div', { class: 'table-wrap' }, h('table', { id, class: 'cards' },
      h('thead', {}, h('tr', {}, head.map((x) => h('th', {}, x)))),
      h('tbody', {}, list.map(row))));
    fill(body,
      h('section', { class: 'panel', 'aria-labelledby': 'h-open' }, h('h2', { id: 'h-open' }, more ? t('alarms.open_more', { n: fmtNumber(open.length), listed: fmtNumber(LISTED) }) : t('alarms.open', { n: open.length })),
        open.length === 0 ? h('p', { class: 'muted' }, t('alarms.none_open')) : table(open, 'alarms-open')),
      h('section', { class: 'panel', 'aria-labelledby': 'h-ended' }, h('h2', { id: 'h-ended' }, t('alarms.ended')),
        ended.length === 0 ? h('p', { class: 'muted' }, t('alarms.none_ended')) : table(ended, 'alarms-ended')));
  };
  const reload = async () => show((await api('GET', '/alarms', undefined, { limit: LISTED + 1 })).alarms || []);
  await show(first.alarms || []);
  let timer = 0;
  let stopped = false;
  // One read at a time: a burst of changes (a sweep that opened thousands
  // of alarms in an outage) makes one more read after the one under way,
  // not a read each.
  let reading = null;
  let again = false;
  const refresh = () => {
    if (reading) { again = true; return; }
    reading = reload().catch((err) => fill(body, errorBox(err))).finally(() => {
      reading = null;
      if (again && !stopped) { again = false; refresh(); }
    });
  };
  // Changes arrive as server-sent events; a slow poll covers a stream a
  // proxy cut.
  onChange = refresh;
  if (missed) onChange();
  // Each (re)connection may have missed changes: read the list again once
  // subscribed (a slow first connection, or one a proxy cut).
  src.addEventListener('open', refresh);
  const tick = async () => {
    try { await reload(); } catch (err) { fill(body, errorBox(err)); }
    if (stopped) return; // left while re-reading: ask no more
    timer = setTimeout(tick, REFRESH_MS);
  };
  timer = setTimeout(tick, REFRESH_MS);
  return () => { stopped = true; clearTimeout(timer); src.close(); delete main.dataset.streamEvents; };
}

async function fallback(ctx, main) {
  const { nodes } = await api('GET', '/nodes', undefined, { area: ctx.defaultArea() });
  const bad = nodes.filter((n) => nodeHealth(n) !== 'online');
  fill(main, h('h1', {}, t('alarms.title')),
    h('p', { class: 'panel' }, t('alarms.pending_api')),
    h('section', { class: 'panel', 'aria-labelledby': 'h-attn' }, h('h2', { id: 'h-attn' }, t('alarms.attention', { n: bad.length })),
      bad.length === 0 ? h('p', { class: 'muted' }, t('alarms.all_well')) :
        h('ul', {}, bad.map((n) => h('li', {}, h('a', { href: `#/clusters/${encodeURIComponent(n.id)}` }, n.name), ' ', badge(nodeHealth(n), 'health.'),
          n.status.last_seen ? ` · ${t('clusters.last_seen')}: ${fmtDateTime(n.status.last_seen)}` : '')))));
}
