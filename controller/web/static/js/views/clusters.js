// Cụm loa: the clusters of my area on an offline map and in a list, and
// one cluster's detail — status, telemetry and its last plays.

import { api, now } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, field, options, badge, fmtDateTime, fmtTime, errorBox, fmtNumber } from '../ui.js';
import { clusterMap } from '../map.js';
import { nodeHealth } from './overview.js';

export async function render(ctx, main, params) {
  if (params[0]) return detail(ctx, main, params[0]);
  const areaSel = h('select', { id: 'cluster-area' }, options(ctx.areaOptions(), ctx.defaultArea()));
  const body = h('div');
  fill(main, h('h1', {}, t('clusters.title')),
    h('div', { class: 'panel no-print' }, field(t('common.area'), areaSel)), body);
  const load = async () => {
    const { nodes } = await api('GET', '/nodes', undefined, { area: areaSel.value });
    const open = (n) => { location.hash = `#/clusters/${encodeURIComponent(n.id)}`; };
    fill(body,
      h('section', { class: 'panel', 'aria-labelledby': 'h-map' }, h('h2', { id: 'h-map' }, t('clusters.map')),
        clusterMap(nodes, { health: nodeHealth, areaName: (id) => ctx.areaName(id), onPick: open })),
      h('section', { class: 'panel', 'aria-labelledby': 'h-list' }, h('h2', { id: 'h-list' }, t('clusters.list', { n: nodes.length })),
        nodes.length === 0 ? h('p', { class: 'muted' }, t('clusters.none')) :
          h('div', { class: 'table-wrap' }, h('table', { id: 'cluster-table' },
            h('thead', {}, h('tr', {}, h('th', {}, t('clusters.name')), h('th', {}, t('common.area')), h('th', {}, t('clusters.state')), h('th', {}, t('clusters.last_seen')), h('th', {}, t('clusters.playing')))),
            h('tbody', {}, nodes.map((n) => h('tr', { dataset: { node: n.id } },
              h('td', {}, h('a', { href: `#/clusters/${encodeURIComponent(n.id)}` }, n.name), h('div', { class: 'hint' }, n.id)),
              h('td', {}, ctx.areaName(n.area)),
              h('td', {}, badge(nodeHealth(n), 'health.')),
              h('td', {}, fmtDateTime(n.status.last_seen)),
              h('td', {}, n.status.playing ? t('priority.' + n.status.playing.priority) : '—'))))))));
  };
  areaSel.addEventListener('change', () => load().catch((e) => fill(body, errorBox(e))));
  await load();
}

async function detail(ctx, main, id) {
  const from = new Date(now().getTime() - 7 * 86400000).toISOString();
  const [n, ev] = await Promise.all([
    api('GET', `/nodes/${encodeURIComponent(id)}`),
    api('GET', '/events', undefined, { node: id, from, limit: 1000 }),
  ]);
  const st = n.status || {};
  const b = st.board || {};
  const row = (k, v) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v ?? '—'));
  const plays = ev.events.filter((e) => e.type !== 'content-ready').slice(-30).reverse();
  fill(main,
    h('p', { class: 'no-print' }, h('a', { href: '#/clusters' }, '← ', t('clusters.title'))),
    h('h1', {}, n.name, ' ', badge(nodeHealth(n), 'health.')),
    h('div', { class: 'grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'h-status' }, h('h2', { id: 'h-status' }, t('clusters.status')),
        h('table', {}, h('tbody', {},
          row(t('clusters.id'), n.id),
          row(t('common.area'), ctx.areaName(n.area)),
          row(t('clusters.position'), `${n.lat}, ${n.lon}`),
          row(t('clusters.state'), badge(st.state || 'never')),
          row(t('clusters.since'), fmtDateTime(st.since)),
          row(t('clusters.last_seen'), fmtDateTime(st.last_seen)),
          row(t('clusters.schedule'), t('clusters.versions', { running: st.running_version, desired: st.desired_version })),
          row(t('clusters.playing'), st.playing ? `${t('priority.' + st.playing.priority)} · ${t('overview.since', { time: fmtTime(st.playing.since) })}` : '—'),
          row(t('clusters.missing'), (st.content_missing || []).length ? String(st.content_missing.length) : '0'),
          row(t('clusters.credentials'), n.credentials)))),
      h('section', { class: 'panel', 'aria-labelledby': 'h-tele' }, h('h2', { id: 'h-tele' }, t('clusters.telemetry')),
        h('table', {}, h('tbody', {},
          row(t('clusters.amplifier'), st.board ? (b.amplifier ? t('common.on') : t('common.off')) : null),
          row(t('clusters.mains'), b.mains === undefined ? null : (b.mains ? t('common.on') : t('clusters.on_battery'))),
          row(t('clusters.battery'), b.battery_volts === undefined ? null : `${fmtNumber(b.battery_volts, 1)} V`),
          row(t('clusters.temperature'), b.temperature_c === undefined ? null : `${fmtNumber(b.temperature_c, 1)} °C`),
          row(t('clusters.clock'), `${st.clock_offset_ms} ms`),
          row(t('clusters.cache'), st.cache_limit ? `${fmtNumber(st.cache_bytes / 1048576, 1)} / ${fmtNumber(st.cache_limit / 1048576)} MiB` : null),
          row(t('clusters.agent'), st.agent),
          row(t('clusters.rejected'), String(st.rejected)),
          row(t('clusters.outbox'), String(st.outbox)))))),
    h('section', { class: 'panel', 'aria-labelledby': 'h-plays' }, h('h2', { id: 'h-plays' }, t('clusters.plays')),
      plays.length === 0 ? h('p', { class: 'muted' }, t('clusters.no_plays')) :
        h('div', { class: 'table-wrap' }, h('table', { id: 'node-plays' },
          h('thead', {}, h('tr', {}, h('th', {}, t('common.time')), h('th', {}, t('clusters.event')), h('th', {}, t('nav.programme')), h('th', {}, t('clusters.detail')))),
          h('tbody', {}, plays.map((e) => h('tr', { dataset: { type: e.type, occurrence: e.occurrence || '' } },
            h('td', {}, fmtDateTime(e.at)),
            h('td', {}, badge(e.type, 'event.')),
            h('td', {}, e.announcement ? h('a', { href: `#/deliveries/${encodeURIComponent(e.announcement)}` }, e.announcement) : '—'),
            h('td', {}, [e.reason, e.late_ms ? t('clusters.late', { ms: e.late_ms }) : '', e.played_ms ? t('clusters.played', { s: fmtNumber(e.played_ms / 1000, 1) }) : ''].filter(Boolean).join(' · ')))))))));
}
