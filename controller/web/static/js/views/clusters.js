// Cụm loa: the clusters of my area on an offline map and in a list, and
// one cluster's detail — status, telemetry and its last plays.

import { api, now } from '../api.js';
import { t, has } from '../i18n.js';
import { h, fill, field, options, badge, fmtDateTime, fmtTime, fmtDuration, errorBox, fmtNumber, toast, confirmDialog, alarmDetail, reasonText, credentialsText, watchHealth, playingText, occurrenceTime } from '../ui.js';
import { clusterMap } from '../map.js';
import { nodeHealth } from './overview.js';

export async function render(ctx, main, params) {
  // With the controller's broker away, the states these screens show are
  // the last it heard (a cluster shown online may have lost its power
  // since): they say so, and stop saying it when the broker is back.
  const health = h('div');
  const stop = watchHealth(health, params[0] ? 'cluster' : 'clusters', ctx.may('system.manage'));
  try {
    if (params[0]) await detail(ctx, main, params[0], health, { titles: new Map(), read: new Set() });
    else await list(ctx, main, health);
  } catch (err) {
    stop();
    throw err;
  }
  return stop;
}

async function list(ctx, main, health) {
  const areaSel = h('select', { id: 'cluster-area' }, options(ctx.areaOptions(), ctx.defaultArea()));
  const body = h('div');
  fill(main, h('h1', {}, t('clusters.title')), health,
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
              h('td', {}, n.status.playing ? playingText(n.status.playing) : '—'))))))));
  };
  areaSel.addEventListener('change', () => load().catch((e) => fill(body, errorBox(e))));
  await load();
}

// detail shows one cluster; titles caches, for this page view, the names
// of the bulletins its plays name (see playTitles).
async function detail(ctx, main, id, health, titles) {
  const from = new Date(now().getTime() - 7 * 86400000).toISOString();
  const [n, ev] = await Promise.all([
    api('GET', `/nodes/${encodeURIComponent(id)}`),
    // Newest first, so that a busy week past the limit still shows today's plays.
    api('GET', '/events', undefined, { node: id, from, limit: 1000, order: 'newest' }),
  ]);
  const st = n.status || {};
  const b = st.board || {};
  const row = (k, v) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v ?? '—'));
  const plays = ev.events.filter((e) => e.type !== 'content-ready').slice(0, 30);
  await playTitles(plays, titles);
  fill(main,
    h('p', { class: 'no-print' }, h('a', { href: '#/clusters' }, '← ', t('clusters.title'))),
    h('h1', {}, n.name, ' ', badge(nodeHealth(n), 'health.')),
    health,
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
          row(t('clusters.playing'), st.playing ? `${playingText(st.playing)} · ${t('overview.since', { time: fmtTime(st.playing.since) })}` : '—'),
          row(t('clusters.missing'), (st.content_missing || []).length ? String(st.content_missing.length) : '0'),
          row(t('clusters.credentials'), credentialsText(n.credentials))))),
      h('section', { class: 'panel', 'aria-labelledby': 'h-tele' }, h('h2', { id: 'h-tele' }, t('clusters.telemetry')),
        h('table', {}, h('tbody', {},
          row(t('clusters.amplifier'), st.board ? (b.amplifier ? t('common.on') : t('common.off')) + (b.amplifier_fault ? ` · ${t('alarm.amplifier-fault')}` : '') : null),
          row(t('clusters.speaker_line'), b.speaker_line ? t('line.' + b.speaker_line) + (b.speaker_ohms !== undefined ? ` (${fmtNumber(b.speaker_ohms, 1)} Ω)` : '') : null),
          row(t('clusters.mains'), b.mains === undefined ? null : (b.mains ? t('common.on') : t('clusters.on_battery'))),
          row(t('clusters.battery'), b.battery_volts === undefined ? null : `${fmtNumber(b.battery_volts, 1)} V` + (b.charging ? ` · ${t('clusters.charging')}` : '')),
          row(t('clusters.temperature'), b.temperature_c === undefined ? null : `${fmtNumber(b.temperature_c, 1)} °C`),
          row(t('clusters.door'), b.door_open === undefined ? null : (b.door_open ? t('clusters.door_open') : t('clusters.door_closed'))),
          row(t('clusters.signal'), b.rssi_dbm === undefined ? null : `${b.rssi_dbm} dBm${b.link ? ' · ' + b.link : ''}`),
          row(t('clusters.volume'), st.volume === undefined ? null : `${st.volume}/15${st.muted ? ' · ' + t('clusters.muted') : ''}`),
          row(t('clusters.uptime'), st.uptime_s ? fmtDuration(st.uptime_s * 1000) : null),
          row(t('clusters.disk'), st.disk_free_bytes === undefined ? null : `${fmtNumber(st.disk_free_bytes / 1048576)} MiB`),
          row(t('clusters.last_play'), st.last_play ? fmtDateTime(st.last_play) : null),
          row(t('clusters.clock'), `${st.clock_offset_ms} ms` +
            (st.clock_uncertainty_us ? ` ± ${fmtNumber(st.clock_uncertainty_us / 1000, 1)} ms` : '')),
          row(t('clusters.cache'), st.cache_limit ? `${fmtNumber((st.cache_bytes || 0) / 1048576, 1)} / ${fmtNumber(st.cache_limit / 1048576)} MiB` : null),
          row(t('clusters.agent'), st.agent),
          row(t('clusters.rejected'), String(st.rejected)),
          row(t('clusters.outbox'), String(st.outbox)))))),
    h('section', { class: 'panel', 'aria-labelledby': 'h-faults', id: 'node-faults' }, h('h2', { id: 'h-faults' }, t('clusters.faults')),
      (st.faults || []).length === 0 ? h('p', { class: 'muted' }, t('clusters.no_faults')) :
        h('ul', {}, st.faults.map((f) => h('li', { dataset: { fault: f.kind } }, h('strong', {}, has('alarm.' + f.kind) ? t('alarm.' + f.kind) : f.kind),
          ` · ${t('overview.since', { time: fmtDateTime(f.since) })}`, alarmDetail(f) ? ` · ${alarmDetail(f)}` : '')))),
    ctx.may('nodes.manage') ? edit(ctx, n, () => detail(ctx, main, id, health, titles)) : null,
    ctx.may('nodes.maintain') ? remote(n, () => detail(ctx, main, id, health, titles)) : null,
    h('section', { class: 'panel', 'aria-labelledby': 'h-plays' }, h('h2', { id: 'h-plays' }, t('clusters.plays')),
      plays.length === 0 ? h('p', { class: 'muted' }, t('clusters.no_plays')) :
        h('div', { class: 'table-wrap' }, h('table', { id: 'node-plays' },
          h('thead', {}, h('tr', {}, h('th', {}, t('common.time')), h('th', {}, t('clusters.event')), h('th', {}, t('nav.programme')), h('th', {}, t('clusters.detail')))),
          h('tbody', {}, plays.map((e) => h('tr', { dataset: { type: e.type, occurrence: e.occurrence || '' } },
            h('td', {}, fmtDateTime(e.at)),
            h('td', {}, badge(e.type, 'event.')),
            h('td', {}, e.announcement ? h('a', { href: `#/deliveries/${encodeURIComponent(e.announcement)}`, title: e.announcement }, playTitle(e.announcement, titles)) : '—'),
            // A schedule received names each day's play alike: say which.
            h('td', {}, [e.type === 'received' && occurrenceTime(e.occurrence) ? t('clusters.plays_at', { time: fmtDateTime(occurrenceTime(e.occurrence)) }) : '',
              reasonText(e.reason), e.late_ms ? t('clusters.late', { ms: e.late_ms }) : '', e.played_ms ? t('clusters.played', { s: fmtNumber(e.played_ms / 1000, 1) }) : '',
              e.salvaged ? t('clusters.salvaged') : ''].filter(Boolean).join(' · ')))))))));
}

// LIVE_PREFIX begins the id of a live call (loaxa.LiveCallIDPrefix), the
// announcement its plays name; an emergency's begins with "e".
const LIVE_PREFIX = 'live-';

/**
 * playTitles reads the titles of the announcements and emergencies the
 * plays name into cache.titles: each list once per page view, as the API
 * reads no set of ids (GET /announcements and GET /emergency, in the
 * caller's area), and only when a play names one not yet known. A list
 * that cannot be read leaves its ids as they are.
 */
async function playTitles(plays, cache) {
  const ids = new Set(plays.map((e) => e.announcement).filter((x) => x && !x.startsWith(LIVE_PREFIX) && !cache.titles.has(x)));
  const lists = [
    ['a', () => api('GET', '/announcements').then((r) => r.announcements || [])],
    ['e', () => api('GET', '/emergency', undefined, { limit: 1000 }).then((r) => r.emergencies || [])],
  ].filter(([prefix]) => !cache.read.has(prefix) && [...ids].some((x) => x.startsWith(prefix)));
  await Promise.all(lists.map(async ([prefix, read]) => {
    cache.read.add(prefix);
    try {
      for (const x of await read()) if (x.title) cache.titles.set(x.id, x.title);
    } catch {
      // Shown by id: the plays matter more than their names.
    }
  }));
}

/** playTitle names what a play played: its bulletin's title, or its id. */
function playTitle(id, cache) {
  if (id.startsWith(LIVE_PREFIX)) return t('clusters.play_live');
  const title = cache.titles.get(id);
  if (!title) return id;
  return id.startsWith('e') ? t('clusters.play_emergency', { title }) : title;
}

/**
 * edit corrects what was written at enrolment: the cluster's name, its
 * position once the pole is surveyed, and the commune it stands in (a
 * pole moved, communes merged). Only what changed is sent; a move to
 * another commune asks first, since the cluster then plays that
 * commune's schedule and alerts and no longer this one's. The API's
 * notice (an external broker's files to export again) stays on the page.
 */
function edit(ctx, n, reload) {
  const name = h('input', { id: 'node-name', value: n.name, required: true, autocomplete: 'off' });
  const lat = h('input', { id: 'node-lat', type: 'number', step: 'any', min: '-90', max: '90', value: String(n.lat) });
  const lon = h('input', { id: 'node-lon', type: 'number', step: 'any', min: '-180', max: '180', value: String(n.lon) });
  const area = h('select', { id: 'node-area' }, options(ctx.areaOptions(), n.area));
  // The cluster's own area may lie outside the list (a district's
  // cluster seen from above it): kept as an option of its own.
  if (![...area.options].some((o) => o.value === n.area)) area.prepend(h('option', { value: n.area, selected: true }, ctx.areaName(n.area)));
  const status = h('div', { id: 'node-edit-status', 'aria-live': 'polite' });
  return h('section', { class: 'panel no-print', 'aria-labelledby': 'h-edit', id: 'node-edit' }, h('h2', { id: 'h-edit' }, t('clusters.edit')),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        const body = {};
        if (name.value.trim() !== n.name) body.name = name.value;
        if (Number(lat.value) !== n.lat) body.lat = Number(lat.value);
        if (Number(lon.value) !== n.lon) body.lon = Number(lon.value);
        if (area.value !== n.area) body.area = area.value;
        if (Object.keys(body).length === 0) { fill(status, h('p', { class: 'muted' }, t('clusters.edit_nothing'))); return; }
        if (body.area && !(await confirmDialog(t('clusters.move_title'),
          h('p', {}, t('clusters.move_text', { name: n.name, from: ctx.areaName(n.area), to: ctx.areaName(body.area) })), t('clusters.move_confirm')))) return;
        try {
          const out = await api('PATCH', `/nodes/${encodeURIComponent(n.id)}`, body);
          toast(t(body.area ? 'clusters.moved' : 'clusters.edited'));
          await reload();
          // Said after the reload, which redraws the page: an operator of an
          // external broker must still act.
          if (out.notice) {
            const again = document.getElementById('node-edit-status');
            if (again) fill(again, h('p', { class: 'error', id: 'node-edit-notice' }, t('clusters.move_broker')));
          }
        } catch (err) { fill(status, errorBox(err)); }
      },
    }, h('div', { class: 'form-grid' },
      field(t('clusters.name'), name),
      field(t('clusters.lat'), lat, t('clusters.position_hint')),
      field(t('clusters.lon'), lon),
      field(t('common.area'), area, t('clusters.area_hint'))),
    h('div', { class: 'row', style: 'margin-top:.6rem' }, h('button', { type: 'submit', id: 'node-edit-save' }, t('clusters.edit_save'))), status));
}

/**
 * remote is the technician's panel: default volume, mute and amplifier
 * policy (they travel in the node's signed desired state, so an offline
 * node applies them when back), a silent or audible self-test with its
 * report, a fresh state report, and a reboot.
 */
function remote(n, reload) {
  const set = n.settings || {};
  const volume = h('select', { id: 'node-volume' }, options(Array.from({ length: 16 }, (_, i) => [String(i), String(i)]), String(set.volume ?? n.status.volume ?? 10)));
  const muted = h('input', { type: 'checkbox', id: 'node-muted', checked: !!set.muted });
  const amp = h('select', { id: 'node-amp' }, options([['auto', t('clusters.amp_auto')], ['always-on', t('clusters.amp_always')]], set.amplifier_policy || 'auto'));
  const status = h('div', { id: 'node-remote-status', 'aria-live': 'polite' });
  const report = h('div', { id: 'selftest-report', 'aria-live': 'polite' });
  const id = encodeURIComponent(n.id);
  const command = (name, confirmText) => async () => {
    if (confirmText && !(await confirmDialog(confirmText, h('p', {}, n.name), t('clusters.cmd_' + name), true))) return;
    try { await api('POST', `/nodes/${id}/commands`, { name }); toast(t('clusters.cmd_sent')); } catch (err) { fill(status, errorBox(err)); }
  };
  const selftest = (kind) => async () => {
    fill(report, t('clusters.testing'));
    try {
      const run = await api('POST', '/selftests', { kind, nodes: [n.id] });
      for (;;) {
        const rep = await api('GET', `/selftests/${encodeURIComponent(run.id)}`);
        const row = (rep.report || [])[0];
        if (rep.complete && row) {
          fill(report, h('p', { class: row.status === 'pass' ? '' : 'error', dataset: { status: row.status } },
            t('selftest.' + row.status), row.speaker_line ? ` · ${t('clusters.speaker_line')}: ${t('line.' + row.speaker_line)}` : '',
            (row.problems || []).length ? ` · ${row.problems.join(', ')}` : ''));
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    } catch (err) { fill(report, errorBox(err)); }
  };
  return h('section', { class: 'panel no-print', 'aria-labelledby': 'h-remote', id: 'node-remote' }, h('h2', { id: 'h-remote' }, t('clusters.remote')),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api('PATCH', `/nodes/${id}/settings`, { volume: Number(volume.value), muted: muted.checked, amplifier_policy: amp.value });
          toast(t('clusters.saved'));
          await reload();
        } catch (err) { fill(status, errorBox(err)); }
      },
    }, h('div', { class: 'form-grid' }, field(t('clusters.volume'), volume, t('clusters.volume_hint')), field(t('clusters.amp_policy'), amp)),
    h('label', { class: 'check', for: 'node-muted' }, muted, t('clusters.mute')),
    h('div', { class: 'row', style: 'margin-top:.6rem' }, h('button', { type: 'submit', id: 'node-save' }, t('clusters.save'))), status),
    h('h3', {}, t('clusters.tests')),
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', id: 'test-silent', onclick: selftest('silent') }, t('clusters.test_silent')),
      h('button', { type: 'button', class: 'secondary', id: 'test-audible', onclick: selftest('audible') }, t('clusters.test_audible')),
      h('button', { type: 'button', class: 'secondary', onclick: command('state-now') }, t('clusters.cmd_state-now')),
      h('button', { type: 'button', class: 'danger', onclick: command('reboot', t('clusters.reboot_title')) }, t('clusters.cmd_reboot'))),
    report);
}
