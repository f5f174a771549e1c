// Cảnh báo: open alarms of the fleet. The fleet health and alarms API
// (issue 6) is not on main yet; until it is, this screen says so and
// points to the clusters that are offline, which the API does report.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, badge, fmtDateTime } from '../ui.js';
import { nodeHealth } from './overview.js';

export async function render(ctx, main) {
  const { nodes } = await api('GET', '/nodes', undefined, { area: ctx.defaultArea() });
  const bad = nodes.filter((n) => nodeHealth(n) !== 'online');
  fill(main, h('h1', {}, t('alarms.title')),
    h('p', { class: 'panel' }, t('alarms.pending_api')),
    h('section', { class: 'panel', 'aria-labelledby': 'h-attn' }, h('h2', { id: 'h-attn' }, t('alarms.attention', { n: bad.length })),
      bad.length === 0 ? h('p', { class: 'muted' }, t('alarms.all_well')) :
        h('ul', {}, bad.map((n) => h('li', {}, h('a', { href: `#/clusters/${encodeURIComponent(n.id)}` }, n.name), ' ', badge(nodeHealth(n), 'health.'),
          n.status.last_seen ? ` · ${t('clusters.last_seen')}: ${fmtDateTime(n.status.last_seen)}` : '')))));
}
