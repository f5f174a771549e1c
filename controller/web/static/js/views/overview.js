// Tổng quan: how many clusters of my area are online, what plays now and
// today, and the emergency entry, set apart from everything else.

import { api, now } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, fmtTime, ymd, addDays, badge, errorBox, fmtNumber } from '../ui.js';

const REFRESH_MS = 15000;

/** nodeHealth sorts a node into the overview's counts. */
export function nodeHealth(n) {
  const st = n.status || {};
  if (st.state !== 'online') return st.state === 'never' ? 'never' : 'offline';
  const behind = st.desired_version && st.running_version !== st.desired_version;
  const missing = (st.content_missing || []).length > 0;
  const mainsOff = st.board && st.board.mains === false;
  return behind || missing || mainsOff ? 'faulty' : 'online';
}

export async function render(ctx, main) {
  const area = ctx.defaultArea();
  const body = h('div');
  fill(main,
    h('h1', {}, t('overview.title'), area ? ` — ${ctx.areaName(area)}` : ''),
    ctx.may('emergency') ? h('a', { class: 'emergency-entry', href: '#/emergency', id: 'emergency-entry' },
      t('overview.emergency'), h('small', {}, t('overview.emergency_hint'))) : null,
    body);

  async function load() {
    const today = ymd(now());
    const [nodes, programme] = await Promise.all([
      api('GET', '/nodes', undefined, { area }),
      area ? api('GET', `/areas/${encodeURIComponent(area)}/programme`, undefined, { from: today, to: addDays(today, 1) }) : { items: [] },
    ]);
    const counts = { online: 0, faulty: 0, offline: 0, never: 0 };
    for (const n of nodes.nodes) counts[nodeHealth(n)]++;
    const playing = nodes.nodes.filter((n) => n.status && n.status.playing);
    const nowMS = now().getTime();
    fill(body,
      h('section', { class: 'panel', 'aria-labelledby': 'h-fleet' },
        h('h2', { id: 'h-fleet' }, t('overview.fleet', { n: nodes.nodes.length })),
        h('div', { class: 'stats' }, ['online', 'faulty', 'offline', 'never'].map((k) =>
          h('a', { class: 'panel', href: '#/clusters', id: 'count-' + k, style: 'text-decoration:none;color:inherit' },
            h('div', { class: `stat s-${k}` }, fmtNumber(counts[k])), badge(k, 'health.'))))),
      h('section', { class: 'panel', 'aria-labelledby': 'h-now' },
        h('h2', { id: 'h-now' }, t('overview.playing')),
        playing.length === 0 ? h('p', { class: 'muted' }, t('overview.silent')) :
          h('ul', {}, playing.map((n) => h('li', {},
            h('a', { href: `#/clusters/${encodeURIComponent(n.id)}` }, n.name), ' — ',
            t('priority.' + n.status.playing.priority), ' · ', t('overview.since', { time: fmtTime(n.status.playing.since) }))))),
      h('section', { class: 'panel', 'aria-labelledby': 'h-today' },
        h('h2', { id: 'h-today' }, t('overview.today')),
        programme.items.length === 0 ? h('p', { class: 'muted' }, t('overview.no_programme')) :
          h('div', { class: 'table-wrap' }, h('table', {},
            h('thead', {}, h('tr', {}, h('th', {}, t('common.time')), h('th', {}, t('common.title')), h('th', {}, t('common.priority')), h('th', { class: 'num' }, t('common.clusters')))),
            h('tbody', {}, programme.items.map((it) => h('tr', { class: Date.parse(it.end) < nowMS ? 'muted' : '' },
              h('td', {}, fmtTime(it.start), '–', fmtTime(it.end)),
              h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(it.announcement)}` }, it.title)),
              h('td', {}, t('priority.' + it.priority)),
              h('td', { class: 'num' }, (it.nodes || []).length))))))));
  }

  let timer = 0;
  const tick = async () => {
    try { await load(); } catch (err) { fill(body, errorBox(err)); }
    timer = setTimeout(tick, REFRESH_MS);
  };
  await tick();
  return () => clearTimeout(timer);
}
