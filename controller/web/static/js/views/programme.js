// Lịch phát: a week of one area's programme with its morning and evening
// sessions; a form to place a bulletin with recurrence in plain words;
// conflicts shown before anything is saved; proposals from the district.

import { api, now } from '../api.js';
import { t, has } from '../i18n.js';
import { h, fill, field, options, fmtTime, fmtClock, fmtDay, fmtDuration, ymd, addDays, mondayOf, vnDate, rfc3339, errorBox, errorText, errorTitle, toast, confirmDialog, vnParts, dayInput, timeInput, parseDay, parseTime, dmy, readFields, clusterNames, occurrenceTime } from '../ui.js';
import { toRule, fromRule, describe, DAYS, clock, sessionDays, sessionDaysRule, describeDays, dayName, dayLabel } from '../recurrence.js';

export async function render(ctx, main, params) {
  clusters = { names: new Map(), read: false };
  const areaSel = h('select', { id: 'programme-area' }, options(ctx.areaOptions(), params[0] || ctx.defaultArea()));
  let week = mondayOf(ymd(now()));
  const weekLabel = h('strong', { id: 'week-label' });
  const body = h('div');
  const nav = (d) => h('button', { type: 'button', class: 'secondary', onclick: () => { week = d === 0 ? mondayOf(ymd(now())) : addDays(week, 7 * d); reload(); } },
    t(d < 0 ? 'programme.prev' : d > 0 ? 'programme.next' : 'programme.this_week'));
  fill(main, h('h1', {}, t('programme.title')),
    h('div', { class: 'panel no-print' }, h('div', { class: 'form-grid' }, field(t('common.area'), areaSel)),
      h('div', { class: 'row', style: 'margin-top:.6rem' }, nav(-1), nav(0), nav(1), weekLabel)),
    body);
  const reload = () => load().catch((e) => fill(body, errorBox(e)));
  areaSel.addEventListener('change', reload);

  async function load() {
    const area = areaSel.value;
    const to = addDays(week, 7);
    fill(weekLabel, `${fmtDay(week)} – ${fmtDay(addDays(week, 6))}`);
    // A programme the controller cannot compile (a bulletin that cannot
    // be scheduled) leaves the rest of the page: the bulletins, where it
    // can be cancelled, and the sessions.
    const [prog, sess, props, anns, content, hol] = await Promise.all([
      api('GET', `/areas/${encodeURIComponent(area)}/programme`, undefined, { from: week, to }).catch((err) => ({ err })),
      api('GET', '/sessions', undefined, { area }),
      api('GET', '/proposals', undefined, { area, state: 'pending' }),
      api('GET', '/announcements', undefined, { state: 'active' }),
      ctx.may('schedule') ? api('GET', '/content') : { content: [] },
      api('GET', '/holidays', undefined, { area }),
    ]);
    const sessions = sess.sessions;
    const nodeArea = await nodeAreas(ctx, anns.announcements);
    fill(body,
      prog.err ? h('div', { class: 'panel', id: 'calendar-error' }, unplayableBox(prog.err)) : calendar(week, prog.items, sessions, hol.holidays || [], prog.deleted_sessions || [], prog.session_runs || []),
      ctx.may('schedule') ? placeForm(ctx, area, sessions, content.content, reload) : null,
      proposalsPanel(ctx, props.proposals, sessions, reload, new Map(anns.announcements.map((a) => [a.id, a]))),
      sessionsPanel(ctx, area, sessions, reload),
      announcementsPanel(ctx, anns.announcements, sessions, nodeArea, reload));
  }
  await load();
}

// deleted are the sessions deleted since that past plays were in (the
// programme answer names them; no session list does): their plays are
// shown in a box of that session saying its times and days and when it
// was deleted, not loose. runs are the days a session ran by times it
// has no more (changed since): its box that day says those times, and
// that they changed; the session's times now were drawn over plays of
// the times before.
function calendar(week, items, sessions, holidays, deleted, runs) {
  const today = ymd(now());
  const ranBy = new Map(runs.map((r) => [`${r.session}@${r.day}`, r]));
  const byDay = new Map();
  for (const it of items) {
    const d = ymd(new Date(it.start));
    if (!byDay.has(d)) byDay.set(d, []);
    byDay.get(d).push(it);
  }
  const slot = (it) => h('div', { class: `slot p-${it.priority}` + (it.cancelled_at ? ' cancelled' : ''), dataset: { announcement: it.announcement } },
    h('a', { href: `#/deliveries/${encodeURIComponent(it.announcement)}` }, `${fmtTime(it.start)} ${it.title}`),
    h('div', { class: 'hint' }, `${fmtDuration(it.end ? Date.parse(it.end) - Date.parse(it.start) : it.duration_ms)} · ${t('priority.' + it.priority)}`),
    it.cancelled_at ? cancelledNote(it) : null);
  const days = [];
  for (let i = 0; i < 7; i++) {
    const day = addDays(week, i);
    const list = (byDay.get(day) || []).sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
    // An item names its session instance, "s000001@20260302".
    const sessionOf = (it) => (it.session || '').split('@')[0];
    const inSession = (s) => list.filter((it) => sessionOf(it) === s.id);
    const loose = list.filter((it) => ![...sessions, ...deleted].some((s) => s.id === sessionOf(it)));
    // The times session s ran by that day: its own, or those it had then.
    const times = (s) => ranBy.get(`${s.id}@${day}`) || s;
    const changed = (s) => {
      const x = times(s);
      if (x === s || (x.start === s.start && x.max_minutes === s.max_minutes)) return null;
      return h('span', { class: 'hint session-changed' }, ' · ' + t('programme.session_times_then', { now: `${clock(s.start)} · ${t('programme.max', { n: s.max_minutes })}` }));
    };
    days.push(h('section', { class: 'day' + (day === today ? ' today' : ''), 'aria-label': fmtDay(day), dataset: { day } },
      h('h3', {}, fmtDay(day), day === today ? ` · ${t('programme.today')}` : ''),
      holidays.filter((x) => x.date === day).map((x) => h('p', { class: 'hint holiday' }, t('programme.holiday', { name: x.name }))),
      // Sessions and the items outside them in the order of the day: a
      // bulletin at 04:21 comes before the 17:00 session, not after it.
      [
        ...sessions.filter((s) => !s.days || inSession(s).length).map((s) => ({
          at: vnDate(day, times(s).start).getTime(),
          el: h('div', { class: 'session', dataset: { session: s.id } },
            h('div', { class: 'name' }, `${s.name} · ${clock(times(s).start)} · ${t('programme.max', { n: times(s).max_minutes })}`, changed(s)),
            inSession(s).map(slot)),
        })),
        ...deleted.filter((s) => inSession(s).length).map((s) => ({
          at: Date.parse(inSession(s)[0].start),
          el: h('div', { class: 'session deleted', dataset: { session: s.id } },
            // Its times, as a standing session's box says them, and its
            // days, which no session list shows any more.
            h('div', { class: 'name' }, `${s.name} · ${clock(times(s).start)} · ${t('programme.max', { n: times(s).max_minutes })} · ${describeDays(times(s).days)} · `,
              h('span', { class: 'deleted-at' }, t('programme.session_deleted', { day: dmy(ymd(new Date(s.deleted_at))) }))),
            inSession(s).map(slot)),
        })),
        ...loose.map((it) => ({ at: Date.parse(it.start), el: slot(it) })),
      ].sort((a, b) => a.at - b.at).map((x) => x.el),
      list.length === 0 && sessions.length === 0 ? h('p', { class: 'hint' }, t('programme.empty_day')) : null));
  }
  return h('section', { class: 'panel', 'aria-labelledby': 'h-week' }, h('h2', { id: 'h-week' }, t('programme.week')),
    h('div', { class: 'week', id: 'week' }, days));
}

// cancelledNote says that a past play's bulletin was cancelled since, and
// when; a play the cancel took off the air (its end is the cancel, to the
// second) says it stopped then: otherwise it looks like any other play.
function cancelledNote(it) {
  const at = new Date(it.cancelled_at);
  const cut = it.end && Date.parse(it.end) >= at.getTime() && Date.parse(it.end) - at.getTime() < 1000;
  return h('div', { class: 'hint cancelled-at' }, t(cut ? 'programme.cancelled_cut' : 'programme.cancelled_at', { time: fmtTime(at), day: dmy(ymd(at)) }));
}

function placeForm(ctx, area, sessions, content, reload) {
  const contentSel = h('select', { id: 'place-content', required: true },
    h('option', { value: '' }, t('programme.pick_content')),
    content.map((c) => h('option', { value: c.id }, `${c.title} (${fmtDuration(c.duration_ms)})`)));
  const title = h('input', { id: 'place-title', maxlength: 200 });
  // Programme relay (tiếp sóng): a station's live MP3 stream for a while,
  // always in the background (docs/scheduling.md).
  const source = h('select', { id: 'place-source' }, options([['content', t('programme.source_content')], ['relay', t('programme.source_relay')]], 'content'));
  const streamURL = h('input', { type: 'url', id: 'place-stream', placeholder: 'http://…/vov1.mp3' });
  const minutes = h('input', { type: 'number', id: 'place-minutes', min: 1, max: 1440, value: 30 });
  // A session that runs no more (its days ended or match no day: stored
  // by an older version, the API refuses such days now) is not offered:
  // a bulletin placed in it would never play. The sessions panel says so.
  const offered = sessions.filter((s) => !s.runs_no_more);
  const whenSel = h('select', { id: 'place-when' }, options([
    ...offered.map((s) => ['s:' + s.id, t('programme.in_session', { name: s.name, time: clock(s.start) })]),
    ['time', t('programme.at_time')]], offered.length ? 's:' + offered[offered.length - 1].id : 'time'));
  const time = timeInput({ id: 'place-time', value: '17:00', required: true });
  const kind = h('select', { id: 'place-recurrence' }, options(['once', 'daily', 'weekdays', 'weekly'].map((k) => [k, t('rec.kind_' + k)]), 'daily'));
  const dayBoxes = DAYS.map((d) => h('input', { type: 'checkbox', value: d, id: 'place-day-' + d }));
  const daysSet = h('fieldset', { hidden: true }, h('legend', {}, t('programme.days')),
    h('div', { class: 'row' }, DAYS.map((d, i) => h('label', { class: 'check', for: 'place-day-' + d }, dayBoxes[i], dayLabel(d)))));
  const start = dayInput({ id: 'place-start', value: ymd(now()), required: true });
  const until = dayInput({ id: 'place-until' });
  const priority = h('select', { id: 'place-priority' }, options(['normal', 'priority', 'background'].map((p) => [p, t('priority.' + p)]), 'normal'));
  const repeat = h('input', { type: 'number', id: 'place-repeat', min: 1, max: 10, value: 1 });
  const summary = h('p', { id: 'place-summary', class: 'stat', style: 'font-size:1.15rem', 'aria-live': 'polite' });
  const status = h('div', { id: 'place-status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', id: 'place-submit' }, t('programme.place'));

  const session = () => (whenSel.value.startsWith('s:') ? sessions.find((s) => 's:' + s.id === whenSel.value) : null);
  const days = () => dayBoxes.filter((b) => b.checked).map((b) => b.value);
  const relay = () => source.value === 'relay';
  const update = () => {
    contentSel.closest('.field').hidden = relay();
    contentSel.required = !relay();
    streamURL.closest('.field').hidden = minutes.closest('.field').hidden = !relay();
    streamURL.required = relay();
    repeat.closest('.field').hidden = relay();
    priority.disabled = relay();
    if (relay()) priority.value = 'background';
    time.closest('.field').hidden = !!session();
    daysSet.hidden = kind.value !== 'weekly';
    until.closest('.field').hidden = kind.value === 'once';
    // What is typed so far, as understood, or as typed until it can be.
    const when = describe({ kind: kind.value, days: days(), time: parseTime(time.value) || time.value, session: session(), date: dmy(parseDay(start.value)) || start.value });
    fill(summary, relay() ? t('programme.relay_summary', { n: minutes.value, when }) : when);
  };
  // request is the bulletin the form describes, or null when a date or
  // time field is wrong (each says why beside it).
  const request = () => {
    const s = session();
    const v = readFields({ time: !s && time, start, until: kind.value !== 'once' && until });
    if (!v) return null;
    const at = vnDate(v.start, s ? s.start : v.time);
    const rrule = toRule(kind.value, days());
    const body = {
      title: title.value.trim() || undefined, priority: priority.value,
      targets: { areas: [area], nodes: [] }, start: rfc3339(at),
    };
    if (relay()) {
      body.stream_url = streamURL.value.trim();
      body.duration_ms = Math.round(Number(minutes.value) * 60000);
      body.priority = 'background';
    } else {
      body.content_id = contentSel.value;
      body.repeat = Number(repeat.value) || 1;
    }
    if (rrule) body.rrule = rrule;
    if (rrule && v.until) body.until = rfc3339(vnDate(v.until, '23:59'));
    if (s) body.session = s.id;
    return body;
  };
  // send posts body; on conflicts, "Vẫn đặt lịch" forces that same body,
  // the one checked, not the form as it stands when pressed.
  const send = async (body) => {
    submit.disabled = true;
    fill(status);
    try {
      const a = await api('POST', '/announcements', body);
      toast(t('programme.placed', { title: a.title }));
      await reload();
    } catch (err) {
      const conflicts = (err.body && err.body.conflicts) || [];
      if (err.status === 409 && conflicts.length) {
        await clusterNames(conflicts.map((c) => c.node), clusters, ctx.defaultArea());
        fill(status, conflictsBox('place-conflicts', t('programme.conflicts', { n: conflicts.length }), conflicts, sessions,
          h('button', { type: 'button', class: 'danger', onclick: () => send({ ...body, force: true }) }, t('programme.force'))));
      } else {
        fill(status, errorBox(err));
      }
    } finally {
      submit.disabled = false;
    }
  };
  for (const el of [source, whenSel, time, kind, start, ...dayBoxes]) el.addEventListener('change', update);
  for (const el of [minutes, time, start]) el.addEventListener('input', update);
  const form = h('form', {
    class: 'panel', id: 'place-form', 'aria-labelledby': 'h-place', onsubmit: (e) => {
      e.preventDefault();
      try { toRule(kind.value, days()); } catch (err) { fill(status, h('p', { class: 'error' }, err.message)); return; }
      const body = request();
      if (!body) return;
      // A relay address that is not http:// or https:// (rtsp://, ftp://):
      // the browser's url field takes it, and the API refuses it in English.
      if (body.stream_url !== undefined && !streamAddress(body.stream_url)) {
        fill(status, h('div', { class: 'error-box', role: 'alert', id: 'place-stream-refused' }, t('programme.stream_refused', { url: body.stream_url })));
        return;
      }
      // A one-off whose time has passed (17:00 today, placed at 17:20):
      // the API refuses it in English, with an RFC 3339 time.
      const at = new Date(body.start);
      if (!body.rrule && at.getTime() < now().getTime() - START_SLACK_MS) {
        fill(status, h('div', { class: 'error-box', role: 'alert', id: 'place-past' },
          t('programme.start_past', { time: fmtTime(at), day: dmy(ymd(at)), now: fmtTime(now()) })));
        return;
      }
      // An end date not after the first play, or already past: the API
      // refuses both in English (the rule would never play).
      if (body.until) {
        const end = new Date(body.until);
        const refusal = end.getTime() <= at.getTime() ? t('programme.until_before_start', { until: dmy(ymd(end)), time: fmtTime(at), start: dmy(ymd(at)) })
          : end.getTime() < now().getTime() ? t('programme.until_past', { until: dmy(ymd(end)), today: dmy(ymd(now())) }) : '';
        if (refusal) {
          fill(status, h('div', { class: 'error-box', role: 'alert', id: 'place-until-refused' }, refusal));
          return;
        }
        // Weekly on Sunday from a Monday to the Friday: no day plays, and
        // the API refuses the rule in English.
        const byday = ruleDays(body.rrule);
        if (byday && !playsOnADay(byday, ymd(at), ymd(end))) {
          fill(status, h('div', { class: 'error-box', role: 'alert', id: 'place-until-refused' }, t('programme.until_no_day', {
            start: dmy(ymd(at)), until: dmy(ymd(end)), days: byday.map(dayName).join(', ') })));
          return;
        }
      }
      send(body);
    },
    // A changed form is not the one the conflicts were found for: their
    // warning and its "Vẫn đặt lịch" go, and "Đặt lịch" checks it again.
    oninput: () => { if (status.querySelector('#place-conflicts')) fill(status); },
    onchange: () => { if (status.querySelector('#place-conflicts')) fill(status); },
  },
  h('h2', { id: 'h-place' }, t('programme.place_title', { area: ctx.areaName(area) })),
  h('div', { class: 'form-grid' },
    field(t('programme.source'), source), field(t('programme.content'), contentSel),
    field(t('programme.stream'), streamURL, t('programme.stream_hint')), field(t('programme.minutes'), minutes),
    field(t('common.title'), title, t('library.title_hint')),
    field(t('programme.when'), whenSel), field(t('programme.time'), time),
    field(t('programme.recurrence'), kind), field(t('programme.start'), start),
    field(t('programme.until'), until, t('programme.until_hint')),
    field(t('common.priority'), priority, t('programme.priority_hint')), field(t('programme.repeat'), repeat)),
  daysSet,
  h('p', { class: 'hint' }, t('programme.summary')), summary,
  h('div', { class: 'row' }, submit), status);
  update();
  return form;
}

/** streamAddress tells whether s is a relay address the API takes: http:// or https:// with a host. */
function streamAddress(s) {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
  } catch {
    return false;
  }
}

/** ruleDays are the BYDAY days of rrule ("MO", …), or null when it plays every day. */
function ruleDays(rrule) {
  const m = /(?:^|;)BYDAY=([A-Z,]+)/.exec(rrule || '');
  return m ? m[1].split(',') : null;
}

/** playsOnADay tells whether a day from one YYYY-MM-DD to another, both included, is one of byday. */
function playsOnADay(byday, from, to) {
  const utc = (day) => { const [y, m, d] = day.split('-').map(Number); return Date.UTC(y, m - 1, d); };
  const last = Math.min(utc(to), utc(from) + 6 * DAY_MS);
  for (let ms = utc(from); ms <= last; ms += DAY_MS) {
    if (byday.includes(DAYS[(new Date(ms).getUTCDay() + 6) % 7])) return true;
  }
  return false;
}

const DAY_MS = 24 * 3600 * 1000;

/** START_SLACK_MS is how far in the past the API still takes a one-off's start (startSlack). */
const START_SLACK_MS = 5000;

/** CONFLICTS_SHOWN is how many conflicts a box lists before counting the rest. */
const CONFLICTS_SHOWN = 5;

/**
 * forcedDeleteRefusal says a forced delete of session s refused: a 403
 * naming emergency items and the right they need (a role table where
 * schedule goes without emergency) in the officer's words, from the
 * answer's items; any other refusal as errorText does.
 */
function forcedDeleteRefusal(s, err) {
  const items = err.status === 403 && err.body && err.body.right === 'emergency' && Array.isArray(err.body.items) ? err.body.items : null;
  if (!items || items.length === 0) return errorText(err);
  return t('programme.delete_needs_emergency', {
    name: s.name, n: items.length, items: items.map((it) => `“${it.title || it.announcement}”`).join(', '),
  });
}

/**
 * unplayableWords names, in the user's words, the bulletin that cannot be
 * scheduled of a 409 with reason bulletin_unplayable, or is null.
 */
function unplayableWords(err) {
  const u = err && err.status === 409 && err.reason === 'bulletin_unplayable' && err.body && err.body.unplayable;
  if (!u) return null;
  return {
    title: u.title || u.announcement,
    area: u.from_area ? (u.from_area_name || u.from_area) : t('programme.unplayable_own_area'),
    part: has('programme.unplayable_' + u.part) ? t('programme.unplayable_' + u.part) : t('programme.unplayable_rule'),
  };
}

/**
 * unplayableBox is the alert in place of a calendar the controller cannot
 * compile: which bulletin keeps it, and what to do; any other failure as
 * errorBox says it.
 */
function unplayableBox(err) {
  const w = unplayableWords(err);
  if (!w) return errorBox(err);
  return h('div', { class: 'error-box', role: 'alert', title: err.message }, t('programme.calendar_unplayable', w));
}

/**
 * unplayableRefusal says a delete of session s refused because a bulletin
 * cannot be scheduled (409, reason bulletin_unplayable): which bulletin,
 * from whom, what of it is missing, and what to do, from the answer's
 * unplayable; '' for any other refusal.
 */
function unplayableRefusal(s, err) {
  const w = unplayableWords(err);
  return w ? t('programme.session_check_unplayable', { name: s.name, ...w }) : '';
}

/**
 * conflictsBox lists the conflicts of a 409 answer in the user's words,
 * under heading, with the button that does it anyway; self is the
 * bulletin being placed or accepted ('new' for one not stored yet), which
 * an overlap is not named after.
 */
// clusters caches the names of the clusters that conflicts name (GET
// /nodes), read when the first conflict is shown; render starts it
// afresh, so it is of one page view, and of the user signed in.
let clusters = { names: new Map(), read: false };

function conflictsBox(id, heading, conflicts, sessions, force, self = 'new') {
  const shown = conflicts.slice(0, CONFLICTS_SHOWN);
  return h('div', { class: 'error-box', role: 'alert', id },
    h('p', {}, h('strong', {}, heading)),
    h('ul', {}, shown.map((c) => h('li', { title: c.message }, conflictText(c, sessions, clusters.names, self))),
      conflicts.length > shown.length ? h('li', {}, t('programme.more_conflicts', { n: conflicts.length - shown.length })) : null),
    force);
}

/**
 * annWhen says when a bulletin plays, "Một lần lúc 7:00 ngày 02/03/2026",
 * in its session when given.
 */
function annWhen(a, session) {
  const p = vnParts(new Date(a.start));
  const date = `${String(p.d).padStart(2, '0')}/${String(p.m).padStart(2, '0')}/${p.y}`;
  const rec = fromRule(a.rrule);
  return describe({ kind: rec.kind, days: rec.days, time: fmtTime(a.start), session, date });
}

/**
 * conflictText says a conflict in the user's language from its fields, the
 * cluster by its name from names (by its code where names lacks it), the
 * bulletin an overlap is with by its title (the answer's items) where it
 * has one, and a one-off in a session over before its time (session_end)
 * as such, not as a session that does not run. Its times have their
 * seconds where they have some, as the API's message does: a bulletin
 * after a 40 s one starts at 06:00:40, not "06:00". One without items or
 * a time says the day where it has one, and nothing where it has none.
 */
export function conflictText(c, sessions, names, self) {
  const at = occurrenceTime((c.occurrences || [])[0]);
  const when = at ? `${fmtClock(at)} ${fmtDay(ymd(at))}` : '';
  const inst = /@(\d{4})(\d{2})(\d{2})$/.exec(c.session || '');
  const day = inst ? fmtDay(`${inst[1]}-${inst[2]}-${inst[3]}`) : at ? fmtDay(ymd(at)) : '';
  const sess = sessions.find((s) => s.id === (c.session || '').split('@')[0]);
  const session = (sess || {}).name || (c.session || '').split('@')[0];
  const key = 'conflict.' + c.kind;
  const node = c.node ? names.get(c.node) || t('conflict.node', { id: c.node }) : '';
  const other = (c.items || []).find((i) => i.announcement !== self && i.title);
  if (c.kind === 'overlap' && other) return t('conflict.overlap_named', { node, when, title: other.title });
  // A one-off whose own time is after its session that day is over.
  if (c.kind === 'no-session' && c.session_end && at) {
    return t('conflict.session_over', { node, session, time: fmtClock(at), day: dmy(ymd(at)), end: fmtClock(c.session_end) });
  }
  // A session that does not run that day, or runs past its length: its
  // day said as a day, the plays past the end by their titles.
  if (c.kind === 'no-session' && day) return t('conflict.no_session_day', { session, day });
  if (c.kind === 'session-overflow' && sess && (c.items || []).length) {
    return t('conflict.session_overflow_named', {
      node, session, start: clock(sess.start), max: sess.max_minutes, day,
      items: c.items.map((i) => `“${i.title || i.announcement}” (${fmtClock(i.start)})`).join(', '),
    });
  }
  if (c.kind === 'session-overflow' && day) return t('conflict.session_overflow_day', { node, session, day });
  return has(key) ? t(key, { node, when, session }) : c.message;
}

function proposalsPanel(ctx, proposals, sessions, reload, byID) {
  if (proposals.length === 0) return null;
  return h('section', { class: 'panel', 'aria-labelledby': 'h-prop', id: 'proposals' },
    h('h2', { id: 'h-prop' }, t('programme.proposals', { n: proposals.length })),
    h('ul', {}, proposals.map((p) => {
      const sel = h('select', { 'aria-label': t('programme.proposal_session') }, options([['', t('programme.own_times')], ...sessions.filter((s) => s.area === p.area && !s.runs_no_more).map((s) => [s.id, s.name])], ''));
      const status = h('div', { 'aria-live': 'polite' });
      // Accepting is checked like placing a bulletin: its conflicts are
      // shown here, with the button that accepts it anyway (force), as
      // the placing form does.
      const act = (verb, force) => async () => {
        fill(status);
        try {
          await api('POST', `/proposals/${p.id}/${verb}`, verb === 'accept' ? { session: sel.value || undefined, force: force || undefined } : {});
          toast(t('programme.proposal_' + verb));
          await reload();
        } catch (err) {
          const conflicts = (err.body && err.body.conflicts) || [];
          if (verb === 'accept' && err.status === 409 && conflicts.length) {
            await clusterNames(conflicts.map((c) => c.node), clusters, ctx.defaultArea());
            fill(status, conflictsBox('proposal-conflicts-' + p.id, t('programme.accept_conflicts', { n: conflicts.length }), conflicts, sessions,
              h('button', { type: 'button', class: 'danger', onclick: act('accept', true) }, t('programme.accept_force')), p.announcement));
          } else if (err.status === 409 && err.body && err.body.proposal) {
            // Decided meanwhile, by a colleague or by the sender's cancel:
            // there is nothing left to press here.
            if (decide) decide.remove();
            fill(status, decidedBox(err));
          } else toast(errorText(err), true, errorTitle(err));
        }
      };
      const decide = ctx.may('schedule') ? h('span', { class: 'row' }, sel, h('button', { type: 'button', onclick: act('accept') }, t('programme.accept')),
        h('button', { type: 'button', class: 'secondary', onclick: act('decline') }, t('programme.decline'))) : null;
      // When it would play: "Theo giờ của đề xuất" must say what that is.
      const a = byID.get(p.announcement);
      return h('li', { dataset: { proposal: p.id } }, h('a', { href: `#/deliveries/${encodeURIComponent(p.announcement)}` }, (a && a.title) || p.announcement),
        a ? h('span', { class: 'proposal-when' }, ` · ${annWhen(a)}`) : null, ` · ${ctx.areaName(p.area)} `,
        decide, status);
    })));
}

/**
 * decidedBox says a decision refused because the proposal was no longer
 * pending (409 with the proposal as it stands) in the user's words: who
 * accepted or declined it and when, or that the sender cancelled the
 * bulletin. The API's own sentence is the tooltip.
 */
function decidedBox(err) {
  const p = err.body.proposal;
  const at = new Date(p.decided_at);
  const key = 'programme.proposal_was_' + p.state;
  return h('div', { class: 'error-box', role: 'alert', id: 'proposal-decided-' + p.id, title: err.message },
    has(key) ? t(key, { who: p.decided_by || '', time: fmtTime(at), day: dmy(ymd(at)) }) : errorText(err));
}

function sessionsPanel(ctx, area, sessions, reload) {
  const name = h('input', { id: 'session-name', required: true, maxlength: 200, value: t('programme.evening') });
  const start = timeInput({ id: 'session-start', required: true, value: '17:00' });
  const max = h('input', { type: 'number', id: 'session-max', min: 1, max: 240, value: 30 });
  // Its days: every day, or days of the week (Monday first, as the week
  // above); a stored rule the boxes cannot show (monthly) is offered as it
  // is, and kept unless the officer picks days.
  const daysSel = h('select', { id: 'session-days' });
  const dayBoxes = DAYS.map((d) => h('input', { type: 'checkbox', value: d, id: 'session-day-' + d }));
  const daysSet = h('fieldset', { id: 'session-days-set', hidden: true }, h('legend', {}, t('programme.days')),
    h('div', { class: 'row' }, DAYS.map((d, i) => h('label', { class: 'check', for: 'session-day-' + d }, dayBoxes[i], dayLabel(d)))));
  const showDays = () => { daysSet.hidden = daysSel.value !== 'weekly'; };
  daysSel.addEventListener('change', showDays);
  const status = h('div', { id: 'session-status', 'aria-live': 'polite' });
  // The form adds a session, or changes the one being edited (PATCH): its
  // bulletins stay in it, where deleting and adding it again cancels them.
  let editing = null;
  const heading = h('h3', { id: 'session-form-title' }, t('programme.add_session'));
  const submit = h('button', { type: 'submit', id: 'session-submit' }, t('programme.add'));
  const hint = h('p', { class: 'hint', id: 'session-edit-hint', hidden: true }, t('programme.edit_session_hint'));
  const stop = h('button', { type: 'button', class: 'secondary', id: 'session-edit-cancel', hidden: true, onclick: () => edit(null) }, t('common.cancel'));
  const edit = (s) => {
    editing = s;
    fill(status);
    name.value = s ? s.name : t('programme.evening');
    start.value = s ? s.start : '17:00';
    max.value = s ? s.max_minutes : 30;
    const d = sessionDays(s && s.days);
    fill(daysSel, options([
      ...(d.kind === 'other' ? [['keep', t('programme.session_days_keep', { days: describeDays(s.days) })]] : []),
      ['daily', t('session_days.every_day')], ['weekly', t('programme.session_days_pick')]]));
    daysSel.value = d.kind === 'other' ? 'keep' : d.kind;
    for (const b of dayBoxes) b.checked = d.days.includes(b.value);
    showDays();
    heading.textContent = s ? t('programme.edit_session', { name: s.name }) : t('programme.add_session');
    submit.textContent = s ? t('programme.save') : t('programme.add');
    hint.hidden = stop.hidden = !s;
    if (s) name.focus();
  };
  edit(null);
  const mine = (s) => ctx.may('schedule') && s.area === area;
  // A session the store holds at the same time as another of its area
  // (written by an older version, or restored from an old backup: the API
  // refuses such a pair now) says so, with the other and when both run.
  const overlapNote = (s) => {
    const o = s.overlap, other = o && sessions.find((x) => x.id === o.session);
    if (!other || !o.from || !o.to) return null;
    return h('div', { class: 'error-box session-overlap', id: 'session-overlap-' + s.id }, t('programme.session_overlaps', {
      name: other.name, start: clock(other.start), max: other.max_minutes,
      from: clock(o.from.slice(11, 16)), to: clock(o.to.slice(11, 16)), day: dmy(o.from.slice(0, 10)),
    }));
  };
  // A session whose days leave nothing to run (stored by an older
  // version: the API refuses such days now) says so; the bulletin forms
  // no longer offer it.
  const endedNote = (s) => (s.runs_no_more
    ? h('div', { class: 'error-box session-ended', id: 'session-ended-' + s.id }, t('programme.session_runs_no_more'))
    : null);
  return h('section', { class: 'panel', 'aria-labelledby': 'h-sess' },
    h('h2', { id: 'h-sess' }, t('programme.sessions')),
    sessions.length === 0 ? h('p', { class: 'muted' }, t('programme.no_sessions')) :
      h('ul', {}, sessions.map((s) => h('li', { dataset: { session: s.id } }, `${s.name} · ${clock(s.start)} · ${t('programme.max', { n: s.max_minutes })} · `,
        h('span', { class: 'session-days' }, describeDays(s.days)), ` · ${ctx.areaName(s.area)} `,
        mine(s) ? h('button', { type: 'button', class: 'secondary', dataset: { edit: s.id }, onclick: () => edit(s) }, t('programme.edit')) : null,
        mine(s) ? ' ' : null,
        mine(s) ? h('button', {
          type: 'button', class: 'secondary', dataset: { delete: s.id }, onclick: async () => {
            if (!(await confirmDialog(t('programme.delete_session'), h('p', {}, s.name), t('programme.delete'), true))) return;
            try {
              await api('DELETE', `/sessions/${s.id}`);
            } catch (err) {
              // 409: bulletins are still placed in it, which would never
              // play again, or bulletins from above wait for it whose own
              // time has passed, which would then play nowhere here; the
              // officer sees them and may delete anyway.
              const items = (err.status === 409 && err.body && err.body.items) || [];
              const lost = ((err.status === 409 && err.body && err.body.from_above) || []).filter((b) => b.lost);
              const unplayable = unplayableRefusal(s, err);
              if (unplayable) { toast(unplayable, true, err.message); return; }
              if (!items.length && !lost.length) { toast(errorText(err), true, err.message); return; }
              const lostText = t('programme.session_from_above_lost', { n: lost.length });
              const body = h('div', {},
                items.length ? h('ul', { id: 'session-items' }, items.map((it) => h('li', {}, it.title || it.announcement))) : null,
                items.length && lost.length ? h('p', {}, lostText) : null,
                lost.length ? h('ul', { id: 'session-from-above' }, lost.map((b) => h('li', {}, t('programme.from_above_play', {
                  title: b.title || b.announcement, area: ctx.areaName(b.from_area), time: fmtTime(b.due), day: dmy(ymd(new Date(b.due))),
                })))) : null);
              const title = items.length ? t('programme.session_has_items', { n: items.length }) : lostText;
              if (!(await confirmDialog(title, body, t('programme.delete_anyway'), true))) return;
              try { await api('DELETE', `/sessions/${s.id}`, undefined, { force: 'true' }); } catch (err2) { toast(forcedDeleteRefusal(s, err2), true, err2.message); return; }
            }
            await reload();
          },
        }, t('programme.delete')) : null,
        overlapNote(s), endedNote(s)))),
    ctx.may('schedule') ? h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        const v = readFields({ start });
        if (!v) return;
        const fields = { name: name.value.trim(), start: v.start, max_minutes: Number(max.value) };
        // Days go only when chosen or changed: an edit leaves a stored
        // rule as it was written ("keep", or the same days picked again).
        const picked = dayBoxes.filter((b) => b.checked).map((b) => b.value);
        const was = editing ? sessionDays(editing.days) : null;
        try {
          if (daysSel.value === 'daily' && !(was && was.kind === 'daily')) fields.days = '';
          if (daysSel.value === 'weekly') {
            const rule = sessionDaysRule(picked);
            if (!(was && was.kind === 'weekly' && was.days.join() === DAYS.filter((d) => picked.includes(d)).join())) fields.days = rule;
          }
        } catch (err) { fill(status, h('div', { class: 'error-box', role: 'alert', id: 'session-days-none' }, err.message)); return; }
        try {
          if (editing) await api('PATCH', `/sessions/${editing.id}`, fields);
          else await api('POST', '/sessions', { area, ...fields });
          await reload();
        } catch (err) { fill(status, sessionOverlapBox(err, v.start) || errorBox(err)); }
      },
    }, heading, hint,
    h('div', { class: 'form-grid' }, field(t('programme.session_name'), name), field(t('programme.session_start'), start), field(t('programme.session_max'), max),
      field(t('programme.session_days'), daysSel)),
    daysSet,
    h('div', { class: 'row' }, submit, stop), status) : null);
}

/**
 * sessionOverlapBox says a session refused for running at the same time as
 * another of its area (409 with the session there and the overlap) in the
 * user's words, from the answer's fields: the API's own sentence, in
 * English, is kept as the tooltip. It is null for any other refusal.
 * start is the refused session's HH:MM.
 */
function sessionOverlapBox(err, start) {
  const body = (err && err.status === 409 && err.body) || {};
  const other = body.session, o = body.overlap;
  if (!other || !o || !o.from || !o.to) return null;
  // The overlap is written in the area's zone, as sessions' starts are:
  // its digits are the area's day and times.
  const args = {
    name: other.name, start: clock(other.start), max: other.max_minutes,
    from: clock(o.from.slice(11, 16)), to: clock(o.to.slice(11, 16)), day: dmy(o.from.slice(0, 10)),
  };
  const key = other.start === start ? 'programme.session_same_start' : 'programme.session_overlap';
  return h('div', { class: 'error-box', role: 'alert', id: 'session-overlap', title: err.message }, t(key, args));
}

/**
 * PLAYED_OUT_MS is how long after its last start (and a relay's window)
 * a bulletin may still play: no late grace, session or resume reaches a
 * day further.
 */
const PLAYED_OUT_MS = 24 * 3600 * 1000;

/**
 * ONE_OFFS_SHOWN bounds the one-off bulletins listed, newest first, so
 * that a province's list stays quick to draw; the rest are counted below
 * it. Recurring bulletins are always listed.
 */
const ONE_OFFS_SHOWN = 200;

/**
 * mayStillPlay reports whether an active bulletin can play again: a
 * recurring one until its until, a one-off until a day after its start.
 * A one-off stays "active" once played (announcements are only active or
 * cancelled), so without this the list filled with them.
 */
export function mayStillPlay(a, nowMS) {
  if (a.rrule) return !a.until || Date.parse(a.until) + PLAYED_OUT_MS > nowMS;
  return Date.parse(a.start) + (a.duration_ms || 0) + PLAYED_OUT_MS > nowMS;
}

/**
 * nodeAreas maps the clusters that active bulletins target one by one to
 * their areas, for mayCancel; read only when a user over part of the tree
 * who may schedule has such a bulletin in the list. A cluster outside the
 * user's area is not in the list, and so not theirs.
 */
async function nodeAreas(ctx, anns) {
  if (!ctx.may('schedule') || !ctx.me.area || !anns.some((a) => ((a.targets || {}).nodes || []).length)) return new Map();
  const { nodes } = await api('GET', '/nodes');
  return new Map(nodes.map((n) => [n.id, n.area]));
}

/**
 * mayCancel reports whether the user may cancel bulletin a: the API
 * needs "schedule" on every target, its areas and its clusters' areas,
 * as for the emergency stop (ctx.covers). A commune's officer was offered
 * "Huỷ lịch" on the district's bulletin and refused after confirming.
 */
function mayCancel(ctx, a, nodeArea) {
  if (!ctx.may('schedule')) return false;
  const targets = a.targets || {};
  const nodes = targets.nodes || [];
  if (ctx.me.area && nodes.some((n) => !nodeArea.has(n))) return false;
  return ctx.covers([...(targets.areas || []), ...nodes.map((n) => nodeArea.get(n)).filter(Boolean)]);
}

function announcementsPanel(ctx, anns, sessions, nodeArea, reload) {
  // A bulletin in a session plays at the session's time: its start only
  // chooses the days (a script's is often midnight).
  const sessionByID = new Map(sessions.map((s) => [s.id, s]));
  const nowMS = now().getTime();
  const active = anns.filter((a) => a.priority !== 'emergency' && mayStillPlay(a, nowMS)).reverse();
  let oneOffs = 0;
  const list = active.filter((a) => a.rrule || ++oneOffs <= ONE_OFFS_SHOWN);
  const more = active.length - list.length;
  return h('section', { class: 'panel', 'aria-labelledby': 'h-anns' },
    h('h2', { id: 'h-anns' }, t('programme.active')),
    more ? h('p', { class: 'hint', id: 'anns-more' }, t('programme.more_active', { n: more, shown: ONE_OFFS_SHOWN })) : null,
    list.length === 0 ? h('p', { class: 'muted' }, t('programme.none_active')) :
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, t('common.title')), h('th', {}, t('programme.recurrence')), h('th', {}, t('common.priority')), h('th', {}, t('programme.by')), h('th', {}))),
        h('tbody', {}, list.map((a) => {
          return h('tr', { dataset: { announcement: a.id } },
            h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(a.id)}` }, a.title)),
            h('td', {}, annWhen(a, sessionByID.get(a.session))),
            h('td', {}, t('priority.' + a.priority)),
            h('td', {}, a.created_by),
            h('td', {}, mayCancel(ctx, a, nodeArea) ? h('button', {
              type: 'button', class: 'secondary', onclick: async () => {
                if (!(await confirmDialog(t('programme.cancel_title'), h('p', {}, a.title), t('programme.cancel_yes'), true))) return;
                try { await api('POST', `/announcements/${a.id}/cancel`); await reload(); } catch (err) { toast(errorText(err), true, errorTitle(err)); }
              },
            }, t('programme.cancel')) : null));
        })))));
}
