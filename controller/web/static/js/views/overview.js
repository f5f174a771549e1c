// Tổng quan: how many clusters of my area are online, what plays now and
// today, and the emergency entry, set apart from everything else.

import { api, now, failingChecks } from '../api.js';
import { t, has } from '../i18n.js';
import { h, fill, fmtTime, ymd, addDays, badge, errorBox, fmtNumber, healthBanners, playingText, refreshMs, alarmSubject } from '../ui.js';
import { pendingCaps } from './emergency.js';

const REFRESH_MS = refreshMs(15000);
// OPEN_ALARMS is how many open alarms the overview reads and counts; past
// it, it says there are more than that, not a count that reads as all.
const OPEN_ALARMS = 100;

/**
 * nodeHealth sorts a node as the fleet health model does: offline, never
 * connected, stale (missed heartbeats), faulty (an open board fault), or
 * online and healthy; a node never connected that waits for its enrolment
 * code (no enrolled_at) is awaiting: a pole not put up yet, no fault.
 */
export function nodeHealth(n) {
  const st = n.status || {};
  if ((st.state === 'never' || !st.state) && !n.enrolled_at) return 'awaiting';
  if (st.state === 'offline' || st.state === 'never' || st.state === 'stale') return st.state;
  return (st.faults || []).length ? 'faulty' : 'online';
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
    const [nodes, programme, alarms, failing] = await Promise.all([
      api('GET', '/nodes', undefined, { area }),
      // A bulletin that cannot be scheduled refuses today's programme
      // (409): said in its panel, not in place of the whole overview,
      // whose alarms name the bulletin.
      area ? api('GET', `/areas/${encodeURIComponent(area)}/programme`, undefined, { from: today, to: addDays(today, 1) })
        .catch((err) => (err.status === 409 && err.reason === 'bulletin_unplayable' ? { items: [], unplayable: err } : Promise.reject(err))) : { items: [] },
      // One more than it counts, to know when there are more: a typhoon
      // that cuts a province's power opens thousands.
      api('GET', '/alarms', undefined, { area, state: 'open', limit: OPEN_ALARMS + 1 }).catch((err) => (err.status === 404 ? null : Promise.reject(err))),
      failingChecks(),
    ]);
    // A warning from a CAP feed that waits for approval must not go unseen.
    const caps = ctx.may('emergency') ? await pendingCaps(now().getTime()).catch(() => null) : null;
    const counts = { online: 0, faulty: 0, stale: 0, offline: 0, never: 0, awaiting: 0 };
    for (const n of nodes.nodes) counts[nodeHealth(n)]++;
    const more = alarms ? alarms.alarms.length > OPEN_ALARMS : false;
    const open = alarms ? alarms.alarms.slice(0, OPEN_ALARMS) : [];
    const names = new Map(nodes.nodes.map((n) => [n.id, n.name]));
    const critical = open.filter((a) => a.severity === 'critical').length;
    const playing = nodes.nodes.filter((n) => n.status && n.status.playing);
    const nowMS = now().getTime();
    fill(body,
      // With its broker away the controller reaches no cluster and hears
      // from none: what the board shows is what it last heard. A full disk
      // stops it storing reports and sending alerts. Files of its data
      // directory that it may not read are said to those who manage it.
      healthBanners(failing, 'overview', ctx.may('system.manage')),
      caps && caps.length ? h('a', { class: 'cap-entry', href: '#/emergency', id: 'cap-pending-entry', role: 'alert' },
        t('cap.waiting', { n: caps.length }), h('small', {}, t('cap.open_to_approve'))) : null,
      h('section', { class: 'panel', 'aria-labelledby': 'h-fleet' },
        h('h2', { id: 'h-fleet' }, t('overview.fleet', { n: nodes.nodes.length })),
        h('div', { class: 'stats' }, ['online', 'faulty', 'stale', 'offline', 'never', 'awaiting'].filter((k) => k !== 'awaiting' || counts[k] > 0).map((k) =>
          h('a', { class: 'panel', href: '#/clusters', id: 'count-' + k, style: 'text-decoration:none;color:inherit' },
            h('div', { class: `stat s-${k}` }, fmtNumber(counts[k])), badge(k, 'health.'))))),
      alarms ? h('section', { class: 'panel', 'aria-labelledby': 'h-alarms', id: 'overview-alarms' },
        h('h2', { id: 'h-alarms' }, h('a', { href: '#/alarms' }, more ? t('overview.alarms_more', { n: fmtNumber(OPEN_ALARMS) }) : t('overview.alarms', { n: open.length, critical }))),
        open.length === 0 ? h('p', { class: 'muted' }, t('alarms.none_open')) :
          h('ul', {}, open.slice(0, 5).map((a) => h('li', {}, badge(a.severity, 'severity.'), ' ',
            has('alarm.' + a.kind) ? t('alarm.' + a.kind) : a.kind, ' — ',
            alarmSubject(a, names), ` · ${t('overview.since', { time: fmtTime(a.start) })}`)))) : null,
      h('section', { class: 'panel', 'aria-labelledby': 'h-now' },
        h('h2', { id: 'h-now' }, t('overview.playing')),
        playing.length === 0 ? h('p', { class: 'muted' }, t('overview.silent')) :
          h('ul', {}, playing.map((n) => h('li', {},
            h('a', { href: `#/clusters/${encodeURIComponent(n.id)}` }, n.name), ' — ',
            playingText(n.status.playing), ' · ', t('overview.since', { time: fmtTime(n.status.playing.since) }))))),
      h('section', { class: 'panel', 'aria-labelledby': 'h-today' },
        h('h2', { id: 'h-today' }, t('overview.today')),
        programme.unplayable ? errorBox(programme.unplayable) :
        programme.items.length === 0 ? h('p', { class: 'muted' }, t('overview.no_programme')) :
          h('div', { class: 'table-wrap' }, h('table', {},
            h('thead', {}, h('tr', {}, h('th', {}, t('common.time')), h('th', {}, t('common.title')), h('th', {}, t('common.priority')), h('th', { class: 'num' }, t('common.clusters')))),
            h('tbody', {}, programme.items.map((it) => h('tr', { class: Date.parse(it.end) < nowMS ? 'muted' : '' },
              // A bulletin shorter than a minute is said at its start:
              // "17:00–17:00" read as nothing at all.
              h('td', {}, fmtTime(it.start), fmtTime(it.end) !== fmtTime(it.start) ? `–${fmtTime(it.end)}` : ''),
              h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(it.announcement)}` }, it.title)),
              h('td', {}, t('priority.' + it.priority)),
              h('td', { class: 'num' }, (it.nodes || []).length))))))));
  }

  // A refresh still on its way when the officer leaves must not schedule
  // another: the screen would keep asking, unseen, once per visit.
  let timer = 0;
  let stopped = false;
  const tick = async () => {
    try { await load(); } catch (err) { fill(body, errorBox(err)); }
    if (stopped) return;
    timer = setTimeout(tick, REFRESH_MS);
  };
  await tick();
  return () => { stopped = true; clearTimeout(timer); };
}
