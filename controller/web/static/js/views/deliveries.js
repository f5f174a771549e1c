// One bulletin's fate on every cluster: pending → received → started →
// completed, or failed / preempted / missed, updating while it plays.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, badge, fmtDateTime, fmtTime, errorBox, fmtNumber, reasonText, refreshMs, clusterLink, clusterNames } from '../ui.js';

const REFRESH_MS = refreshMs(4000);

export async function render(ctx, main, params) {
  const id = params[0];
  const body = h('div');
  // The clusters by name, as the cluster list shows them (read once).
  const clusters = { names: new Map(), read: false };
  fill(main, h('p', { class: 'no-print' }, h('a', { href: '#/programme' }, '← ', t('nav.programme'))), body);
  const load = async () => {
    const [a, d] = await Promise.all([api('GET', `/announcements/${encodeURIComponent(id)}`), api('GET', `/announcements/${encodeURIComponent(id)}/deliveries`)]);
    await clusterNames(d.deliveries.map((x) => x.node), clusters, ctx.defaultArea());
    fill(body,
      h('h1', {}, a.title),
      // A bulletin cancelled with its session says so: the officer who
      // placed it did not cancel it.
      h('p', {}, `${t('priority.' + a.priority)} · ${t('deliveries.by', { user: a.created_by })} · `, badge(a.state, 'ann.'),
        a.cancel_reason ? h('span', { id: 'cancel-reason' }, ` · ${reasonText(a.cancel_reason)}`) : null),
      h('div', { class: 'stats', id: 'delivery-counts' }, Object.entries(d.counts || {}).map(([k, n]) =>
        h('div', { class: 'panel' }, h('div', { class: `stat s-${k}` }, fmtNumber(n)), badge(k)))),
      h('section', { class: 'panel', 'aria-labelledby': 'h-del' }, h('h2', { id: 'h-del' }, t('deliveries.title')),
        d.deliveries.length === 0 ? h('p', { class: 'muted' }, t('deliveries.none')) :
          h('div', { class: 'table-wrap' }, h('table', { id: 'deliveries' },
            h('thead', {}, h('tr', {}, h('th', {}, t('clusters.name')), h('th', {}, t('common.time')), h('th', {}, t('clusters.state')), h('th', {}, t('deliveries.audio')), h('th', {}, t('clusters.detail')))),
            h('tbody', {}, d.deliveries.map((x) => h('tr', { dataset: { node: x.node, state: x.state } },
              h('td', {}, clusterLink(x.node, clusters.names)),
              h('td', {}, fmtDateTime(x.start)),
              h('td', {}, badge(x.state)),
              h('td', {}, x.content_ready ? t('deliveries.ready', { time: fmtTime(x.content_ready_at) }) : t('deliveries.not_ready')),
              h('td', {}, [reasonText(x.reason), x.failed_to_sound ? t('deliveries.failed_to_sound') : '', x.played_ms ? t('clusters.played', { s: fmtNumber(x.played_ms / 1000, 1) }) : ''].filter(Boolean).join(' · ')))))))));
  };
  // A refresh still on its way when the officer leaves must not schedule
  // another: the screen would keep asking, unseen, once per visit.
  let timer = 0;
  let stopped = false;
  const tick = async () => {
    // A bulletin that plays nowhere in the officer's area (its clusters
    // moved away, or their area changed) says so as a results page, not
    // as a cancel refused, under the page's heading.
    try { await load(); } catch (err) { fill(body, h('h1', {}, t('deliveries.title')), errorBox(err, 'results')); }
    if (stopped) return;
    timer = setTimeout(tick, REFRESH_MS);
  };
  await tick();
  return () => { stopped = true; clearTimeout(timer); };
}
