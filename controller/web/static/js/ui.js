// ui.js: small helpers to build the DOM (no framework), format times in
// Vietnam's time zone, and tell the user about errors in their language.

import { t, has, locale } from './i18n.js';
import { api, failingChecks } from './api.js';

/** TZ is the time zone schedules are written in (docs/scheduling.md). */
export const TZ = 'Asia/Ho_Chi_Minh';
const VN_OFFSET_MS = 7 * 3600 * 1000; // Vietnam has no daylight saving time

/**
 * refreshMs returns how long a screen waits before it asks the controller
 * again: ms, times the factor the controller put in the page (its
 * ConsoleRefresh, which browser tests lower so as not to wait out a
 * refresh; none: ms as shipped). The page's factor can only shorten it.
 */
export function refreshMs(ms) {
  const factor = Number(document.querySelector('meta[name="loaxa-refresh"]')?.content);
  return factor > 0 && factor < 1 ? Math.round(ms * factor) : ms;
}

/**
 * h builds an element: h('button', {class: 'x', onclick: f}, 'text', child).
 * Strings become text nodes, never HTML, so API data cannot inject markup.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the Content-Security-Policy forbids style attributes.
    else if (k === 'style') el.style.cssText = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** s builds an SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

/** clear empties an element and fills it with children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** field is a label with its control and an optional hint, linked for screen readers. */
let fieldSeq = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hid = id + '-hint';
    control.setAttribute('aria-describedby', hid);
    parts.push(h('p', { class: 'hint', id: hid }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

/** options makes <option>s from [value, label] pairs. */
export function options(pairs, selected) {
  return pairs.map(([v, l]) => h('option', { value: v, selected: v === selected }, l));
}

/**
 * toast shows a short message that goes away by itself; title, if given,
 * is its tooltip (the API's own sentence under a refusal said in the
 * user's words).
 */
export function toast(msg, bad, title) {
  const el = h('div', { class: 'toast' + (bad ? ' bad' : ''), role: bad ? 'alert' : 'status', title }, msg);
  document.getElementById('toasts').append(el);
  setTimeout(() => el.remove(), bad ? 9000 : 4000);
}

/**
 * refusalText says a refusal the API names by its reason (speech_unavailable)
 * wholly in the user's language, or is '' for one it does not name. A
 * reason may read otherwise on a screen (bulletin_elsewhere is worded for
 * a cancel; on a bulletin's results page nothing was to be done):
 * `err.reason.${reason}.${screen}` then, where the screen has its own. A
 * screen may also word a code wholly (`err.${code}.${screen}`: the
 * emergency form's server error, whose English says nothing an officer
 * can act on).
 */
function refusalText(err, screen) {
  if (!err) return '';
  const keys = [];
  if (err.reason && screen) keys.push(`err.reason.${err.reason}.${screen}`);
  if (err.reason) keys.push(`err.reason.${err.reason}`);
  if (err.code && screen) keys.push(`err.${err.code}.${screen}`);
  const key = keys.find(has);
  return key ? t(key) : '';
}

/**
 * errorText says what went wrong in the user's language: a refusal the API
 * names by its reason wholly (in the words of screen, if it has its own),
 * any other by its code, then the API's own words.
 */
export function errorText(err, screen) {
  const said = refusalText(err, screen);
  if (said) return said;
  const code = err && err.code;
  const head = code && has('err.' + code) ? t('err.' + code) : t('err.unknown');
  return err && err.message ? `${head} ${err.message}` : head;
}

/**
 * errorBox is an alert block for a form; where errorText said the refusal
 * wholly in the user's words (of screen, as errorText), the API's own
 * sentence is its tooltip.
 */
export function errorBox(err, screen) {
  return h('div', { class: 'error-box', role: 'alert', title: errorTitle(err, screen) }, errorText(err, screen));
}

/**
 * errorTitle is the tooltip of a refusal errorText says wholly in the
 * user's words (of screen): the API's own sentence, for a technician; or
 * undefined, where errorText says that sentence itself.
 */
export function errorTitle(err, screen) {
  return refusalText(err, screen) ? err.message : undefined;
}

/**
 * HEALTH_WORDS are, for each screen that shows healthBanners, the failing
 * health checks (failingChecks) it warns of, in the order shown: the
 * banner's id (`${prefix}-${id}`), the words an officer reads (null: not
 * shown to them) and those of an admin (who manages the controller,
 * `system.manage`, and can mend it on its server: the remedy; default the
 * officer's). Overview and cluster pages: the broker away (the states
 * shown are the last heard, nothing reaches a cluster), the disk nearly
 * full, and to an admin files of its data directory that belong to
 * another user, the store unreadable and the health sweep stopped (what
 * the emergency screen tells an officer the admin sees too). The
 * emergency screen: every check that stops or endangers
 * an alert, said for the alert — the broker, the disk (an alert is stored
 * before it goes out: a full disk refuses it), the store, the files (a
 * recording the clusters cannot download) and the health sweep (the
 * counts of clusters online may be old). The scheduler's lag holds back
 * bulletins, not alerts: not said there.
 */
const HEALTH_WORDS = {
  overview: [
    ['broker', 'broker-down', 'overview.broker_down'],
    ['disk', 'disk-low', 'overview.disk_low'],
    ['files', 'files-foreign', null, 'overview.files_foreign'],
    ['store', 'store-failing', null, 'overview.store_failing'],
    ['health', 'sweep-late', null, 'overview.sweep_late'],
  ],
  emergency: [
    ['broker', 'broker-down', 'emergency.broker_down'],
    ['disk', 'disk-low', 'emergency.disk_low', 'emergency.disk_low_admin'],
    ['store', 'store-failing', 'emergency.store_failing', 'emergency.store_failing_admin'],
    ['files', 'files-foreign', 'emergency.files_foreign', 'emergency.files_foreign_admin'],
    ['health', 'sweep-late', 'emergency.sweep_late', 'emergency.sweep_late_admin'],
  ],
};

/**
 * healthBanners are the red boxes for the controller's failing health
 * checks that change what a screen (HEALTH_WORDS: 'overview', for the
 * overview and the cluster pages, or 'emergency') means, each in the
 * words of an admin (admin true) or an officer; an admin's has the
 * check's own words as its tooltip. Their ids are `${prefix}-broker-down`,
 * `${prefix}-disk-low`, `${prefix}-files-foreign`, … (HEALTH_WORDS).
 */
export function healthBanners(failing, prefix, admin, screen = 'overview') {
  return HEALTH_WORDS[screen].map(([check, id, officer, manager]) => {
    const key = admin ? manager || officer : officer;
    if (!key || !failing.has(check)) return null;
    return h('div', { class: 'error-box', role: 'alert', id: `${prefix}-${id}`, title: admin ? failing.get(check) || undefined : undefined }, t(key));
  });
}

/** HEALTH_MS is how often a screen that shows healthBanners asks again. */
const HEALTH_MS = refreshMs(15000);

/**
 * watchHealth keeps el filled with the healthBanners, asking the
 * controller every HEALTH_MS, so that a screen left open shows the broker
 * going and coming back; the function it returns stops it.
 */
export function watchHealth(el, prefix, admin, screen = 'overview') {
  let timer = 0;
  let stopped = false;
  const tick = async () => {
    const failing = await failingChecks();
    if (stopped) return;
    fill(el, healthBanners(failing, prefix, admin, screen));
    timer = setTimeout(tick, HEALTH_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/** vnParts gives the calendar fields of d in Vietnam's time zone. */
export function vnParts(d) {
  const v = new Date(d.getTime() + VN_OFFSET_MS);
  return { y: v.getUTCFullYear(), m: v.getUTCMonth() + 1, d: v.getUTCDate(), H: v.getUTCHours(), M: v.getUTCMinutes(), wd: v.getUTCDay() };
}

const pad = (n) => String(n).padStart(2, '0');

/** ymd is the Vietnamese calendar date of d as YYYY-MM-DD. */
export function ymd(d) {
  const p = vnParts(d);
  return `${p.y}-${pad(p.m)}-${pad(p.d)}`;
}

/** vnDate is midnight (or HH:MM) of a YYYY-MM-DD day in Vietnam. */
export function vnDate(day, hhmm) {
  const [y, m, dd] = day.split('-').map(Number);
  const [H, M] = (hhmm || '00:00').split(':').map(Number);
  return new Date(Date.UTC(y, m - 1, dd, H, M) - VN_OFFSET_MS);
}

/** rfc3339 writes d in Vietnam's offset, as schedules are written. */
export function rfc3339(d) {
  const p = vnParts(d);
  return `${p.y}-${pad(p.m)}-${pad(p.d)}T${pad(p.H)}:${pad(p.M)}:00+07:00`;
}

/** addDays moves a YYYY-MM-DD day. */
export function addDays(day, n) {
  return ymd(new Date(vnDate(day).getTime() + n * 86400000));
}

/** mondayOf is the Monday of day's week. */
export function mondayOf(day) {
  const wd = vnParts(vnDate(day)).wd; // 0 = Sunday
  return addDays(day, -((wd + 6) % 7));
}

/*
 * Date and time fields. <input type="date"> and <input type="time"> are
 * drawn in the browser's language: an English Chromium shows mm/dd/yyyy
 * and "05:00 PM", and a Vietnamese officer who typed 02/12/2026 for
 * 2 December had the bulletin placed on 12 February. Ours are text fields
 * that always read and write dd/mm/yyyy and 24-hour hh:mm, and give the
 * forms the API's YYYY-MM-DD and HH:MM.
 */

/** dmy writes a YYYY-MM-DD day as dd/mm/yyyy. */
export function dmy(day) {
  const [y, m, d] = (day || '').split('-');
  return day ? `${d}/${m}/${y}` : '';
}

/**
 * parseDay reads a day written the Vietnamese way, day first: "02/12/2026",
 * "2/12/2026", "02-12-2026", "2.12.26", or the digits alone "02122026" (a
 * phone's number pad has no "/"). It gives YYYY-MM-DD, '' for nothing
 * typed, or null when it is not a real day (31/02/2026).
 */
export function parseDay(text) {
  const v = (text || '').trim();
  if (!v) return '';
  const m = /^(\d{1,2})\s*[/.\-\s]\s*(\d{1,2})\s*[/.\-\s]\s*(\d{4}|\d{2})$/.exec(v) || /^(\d{2})(\d{2})(\d{4}|\d{2})$/.exec(v);
  if (!m) return null;
  const d = Number(m[1]), mo = Number(m[2]), y = Number(m[3]) + (m[3].length === 2 ? 2000 : 0);
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return null;
  return `${y}-${pad(mo)}-${pad(d)}`;
}

/**
 * parseTime reads a time on the 24-hour clock as officers write it:
 * "17:00", "5:30", "17h", "17h30", "17g30", "17.30", or the digits alone
 * "1730". It gives HH:MM, '' for nothing typed, or null for no such time.
 */
export function parseTime(text) {
  const v = (text || '').trim().toLowerCase();
  if (!v) return '';
  const m = /^(\d{1,2})(?:\s*[:hg.]\s*(\d{2})?)?$/.exec(v) || /^(\d{1,2})(\d{2})$/.exec(v);
  if (!m) return null;
  const H = Number(m[1]), M = Number(m[2] || 0);
  return H <= 23 && M <= 59 ? `${pad(H)}:${pad(M)}` : null;
}

const DATETIME = {
  day: { parse: parseDay, show: dmy, placeholder: 'dd/mm/yyyy', bad: 'datetime.bad_day', empty: 'datetime.empty_day' },
  time: { parse: parseTime, show: (v) => v || '', placeholder: 'hh:mm', bad: 'datetime.bad_time', empty: 'datetime.empty_time' },
};

/**
 * dayInput is a field for a day in dd/mm/yyyy, its value given and read
 * (readFields) as YYYY-MM-DD; timeInput one for a 24-hour hh:mm. attrs
 * are h's: id, value, required.
 */
export function dayInput(attrs) { return datetimeInput('day', attrs); }

/** timeInput is dayInput for a time of day, HH:MM. */
export function timeInput(attrs) { return datetimeInput('time', attrs); }

function datetimeInput(kind, attrs) {
  const k = DATETIME[kind];
  const { value, required, ...rest } = attrs || {};
  // Not the browser's required: its bubble speaks the browser's language.
  const el = h('input', {
    ...rest, type: 'text', inputmode: 'numeric', autocomplete: 'off', spellcheck: 'false',
    placeholder: k.placeholder, 'aria-required': required ? 'true' : null, value: k.show(value),
    dataset: { datetime: kind, required: required ? 'true' : '' },
  });
  // Leaving the field writes what was understood, or says what is wrong.
  el.addEventListener('change', () => { if (readField(el) !== null) el.value = k.show(k.parse(el.value)); });
  el.addEventListener('input', () => { if (el.getAttribute('aria-invalid')) markField(el, ''); });
  return el;
}

/**
 * readField gives a dayInput's or timeInput's value for the API
 * (YYYY-MM-DD, HH:MM, '' when empty and not required), or null when it is
 * wrong, saying so next to the field, the field named.
 */
function readField(el) {
  const k = DATETIME[el.dataset.datetime];
  const v = k.parse(el.value);
  const name = el.labels && el.labels[0] ? el.labels[0].textContent : '';
  let problem = '';
  if (v === null) problem = t(k.bad, { field: name, text: el.value.trim() });
  else if (v === '' && el.dataset.required) problem = t(k.empty, { field: name });
  markField(el, problem);
  return problem ? null : v;
}

function markField(el, problem) {
  const id = el.id + '-error';
  let msg = document.getElementById(id);
  if (!msg && problem) {
    msg = h('p', { class: 'field-error', id, role: 'alert' });
    el.after(msg);
    el.setAttribute('aria-describedby', [el.getAttribute('aria-describedby'), id].filter(Boolean).join(' '));
  }
  if (msg) { msg.hidden = !problem; fill(msg, problem); }
  if (problem) el.setAttribute('aria-invalid', 'true');
  else el.removeAttribute('aria-invalid');
}

/**
 * readFields reads the date and time fields of a form, {name: input}
 * (a false input is skipped: a hidden field), into {name: value}; if one
 * is wrong, each wrong one says why, the first has the focus and it gives
 * null: the form is not sent.
 */
export function readFields(inputs) {
  const out = {};
  let first = null;
  for (const [name, el] of Object.entries(inputs)) {
    if (!el) continue;
    out[name] = readField(el);
    if (out[name] === null && !first) first = el;
  }
  if (first) { first.focus(); return null; }
  return out;
}

/** fmtTime is HH:MM of an RFC 3339 string or Date, in Vietnam. */
export function fmtTime(v) {
  if (!v) return '';
  return new Intl.DateTimeFormat(locale(), { timeZone: TZ, hour: '2-digit', minute: '2-digit', hour12: false }).format(new Date(v));
}

/**
 * fmtClock is fmtTime with the seconds where the time has some,
 * "06:00:40", as the API's messages write it: bulletins last seconds, and
 * one that starts 40 s into a session must not read as starting with it.
 */
export function fmtClock(v) {
  if (!v) return '';
  const d = new Date(v);
  return d.getUTCSeconds() ? `${fmtTime(d)}:${String(d.getUTCSeconds()).padStart(2, '0')}` : fmtTime(d);
}

/** occurrenceTime reads the start out of an occurrence id, "a000002@20260302T110000.000Z". */
export function occurrenceTime(occ) {
  const m = /@(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})/.exec(occ || '');
  return m ? new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : null;
}

/** fmtDateTime is a short date and time in Vietnam. */
export function fmtDateTime(v) {
  if (!v) return '';
  return new Intl.DateTimeFormat(locale(), { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false }).format(new Date(v));
}

/** fmtDate is a YYYY-MM-DD day written for the locale: "02/03/2026". */
export function fmtDate(day) {
  if (!day) return '';
  return new Intl.DateTimeFormat(locale(), { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric' }).format(vnDate(day, '12:00'));
}

/** fmtDay is a weekday and date, e.g. "Thứ Hai, 02/03". */
export function fmtDay(day) {
  return new Intl.DateTimeFormat(locale(), { timeZone: TZ, weekday: 'long', day: '2-digit', month: '2-digit' }).format(vnDate(day, '12:00'));
}

/**
 * fmtDuration says milliseconds with their units, "1 phút 1 giây" / "1 min
 * 1 s", leaving out the parts that are zero: "1:01" alone could be read as
 * minutes or hours.
 */
export function fmtDuration(ms) {
  const s = Math.round((ms || 0) / 1000);
  const parts = [[Math.floor(s / 3600), 'dur.h'], [Math.floor((s % 3600) / 60), 'dur.min'], [s % 60, 'dur.s']]
    .filter(([n]) => n > 0).map(([n, key]) => t(key, { n }));
  return parts.length ? parts.join(' ') : t('dur.s', { n: 0 });
}

/** fmtNumber formats a number for the locale. */
export function fmtNumber(n, digits) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits ?? 0 }).format(n);
}

/**
 * badge shows a state with its word and colour. The words' prefix names
 * what the state is of (of-ann, of-emstate): one state may be calm for one
 * thing and an alarm for another ("active": a bulletin in force, an
 * emergency alert in force).
 */
export function badge(state, prefix) {
  const key = (prefix || 'state.') + state;
  const of = prefix ? ` of-${prefix.replace(/\.$/, '')}` : '';
  return h('span', { class: `badge s-${state}${of}` }, has(key) ? t(key) : state);
}

/**
 * credentialsText words a node's credential state (active, pending,
 * revoked); not a badge, whose colours are those of play and alarm states.
 */
export function credentialsText(state) {
  if (!state) return null;
  return has('credentials.' + state) ? t('credentials.' + state) : state;
}

/** reasonText words a play's failure reason (protocol's Reason…) for the officer. */
export function reasonText(reason) {
  if (!reason) return '';
  return has('reason.' + reason) ? t('reason.' + reason) : reason;
}

/**
 * alarmDetail words what an alarm (or a node's fault) measured, in the
 * current language, from its facts. An alarm stored before alarms carried
 * facts keeps the controller's English detail. Kinds whose name says it
 * all add nothing. docs/fleet-health.md lists the kinds.
 */
export function alarmDetail(a) {
  const f = a.facts || {};
  const n = fmtNumber;
  let words;
  switch (a.kind) {
    case 'clock-offset':
      if (f.clock_offset_ms !== undefined) words = t('alarmfact.clock_offset', { ms: n(f.clock_offset_ms) });
      break;
    case 'clock-uncertain':
      if (f.uncertainty_bound_ms) words = t('alarmfact.clock_uncertain', { ms: n(f.uncertainty_bound_ms), min: n((f.uncertain_for_s || 0) / 60) });
      break;
    case 'content-missing':
      if (f.missing_content) words = t('alarmfact.content_missing', { n: n(f.missing_content), h: n((f.missing_for_s || 0) / 3600) });
      break;
    case 'disk-low':
      if (f.disk_free_bytes !== undefined) words = t('alarmfact.disk_low', { mib: n(f.disk_free_bytes / 1048576) });
      break;
    case 'storage-damaged':
      if (f.damaged_files) words = t('alarmfact.storage_damaged', { n: n(f.damaged_files) });
      break;
    case 'link-deaf':
      if (f.deaf_times) words = t('alarmfact.link_deaf', { n: n(f.deaf_times) });
      break;
    case 'speaker-line-open':
      return t('alarmfact.speaker_open');
    case 'speaker-line-short':
      return f.speaker_ohms !== undefined ? t('alarmfact.speaker_short', { ohms: n(f.speaker_ohms, 1) }) : '';
    case 'relay-feedback':
      if (f.relay_commanded !== undefined) {
        const word = (on) => t(on ? 'alarmfact.on' : 'alarmfact.off');
        words = t('alarmfact.relay', { command: word(f.relay_commanded), feedback: word(f.relay_feedback) });
      }
      break;
    case 'battery-low':
      if (f.battery_volts !== undefined) words = t('alarmfact.battery_low', { v: n(f.battery_volts, 2) });
      break;
    case 'overheat':
      if (f.temperature_c !== undefined) words = t('alarmfact.overheat', { c: n(f.temperature_c, 1) });
      break;
    case 'weak-signal':
      if (f.rssi_dbm !== undefined) words = t('alarmfact.weak_signal', { dbm: n(f.rssi_dbm), link: f.link || '?' });
      break;
    case 'failed-to-sound':
      if (f.reason) words = t('alarmfact.failed_to_sound', { reason: reasonText(f.reason), occurrence: f.occurrence || '?' });
      break;
    case 'offline':
      if (f.last_contact) words = t('alarmfact.offline', { time: fmtDateTime(f.last_contact) });
      break;
    case 'no-sound-device':
      words = t('alarmfact.no_sound_device', { error: f.error || '?' });
      break;
    case 'storage-failed':
      words = t('alarmfact.storage_failed', { error: f.error || '?' });
      break;
    case 'area-unheard':
      if (f.areas && f.areas.length) words = t('alarmfact.area_unheard', { areas: f.areas.join(', ') });
      break;
    case 'key-untrusted':
      if (f.key) words = t('alarmfact.key_untrusted', { key: f.key, trusted: (f.trusted || []).join(', ') || '?' });
      break;
    case 'desired-undelivered':
      if (f.desired_version) words = t('alarmfact.desired_undelivered', { version: f.desired_version, attempts: n(f.attempts || 0), error: f.error || '?' });
      break;
    case 'bulletin-unschedulable':
      if (f.announcement) {
        words = t('alarmfact.bulletin_unschedulable', {
          title: f.title || f.announcement,
          area: f.from_area ? (f.from_area_name || f.from_area) : t('programme.unplayable_own_area'),
          part: has('programme.unplayable_' + f.part) ? t('programme.unplayable_' + f.part) : (f.part || '?'),
          nodes: n(f.nodes || 0),
        });
      }
      break;
    case 'amplifier-fault':
    case 'mains-off':
    case 'door-open':
      return '';
  }
  return words ?? a.detail ?? '';
}

/**
 * alarmSubject links what an alarm is of: its cluster, or for a bulletin
 * that cannot be scheduled (no cluster) the bulletin's page.
 */
export function alarmSubject(a, names) {
  const ann = a.facts && a.facts.announcement;
  if (!a.node && ann) return h('a', { href: `#/deliveries/${encodeURIComponent(ann)}` }, a.facts.title || ann);
  return clusterLink(a.node, names);
}

/**
 * clusterLink links a cluster by its name from names (a Map of id to
 * name), as the cluster list names it, with its id as the tooltip; by its
 * id where names does not hold it.
 */
export function clusterLink(id, names) {
  const name = names && names.get(id);
  return h('a', { href: `#/clusters/${encodeURIComponent(id)}`, title: name ? id : null }, name || id);
}

/**
 * clusterNames reads into cache.names the names of the clusters of area
 * (GET /nodes): once per page view, and only when ids holds one not yet
 * known, as the list is long in a province. A list that cannot be read
 * leaves the ids shown: what happened matters more than the names.
 */
export async function clusterNames(ids, cache, area) {
  if (cache.read || !ids.some((id) => id && !cache.names.has(id))) return;
  cache.read = true;
  try {
    const { nodes } = await api('GET', '/nodes', undefined, area ? { area } : undefined);
    for (const n of nodes || []) if (n.name) cache.names.set(n.id, n.name);
  } catch {
    // Shown by id.
  }
}

/** lowerFirst turns "Xã Lập Lễ" into "xã Lập Lễ" to follow a role word. */
export function lowerFirst(str) {
  return str ? str.charAt(0).toLocaleLowerCase('vi') + str.slice(1) : str;
}

/**
 * playingText names the level a cluster plays at, and a drill as one:
 * "Khẩn cấp" alone over a drill read as a real alert.
 */
export function playingText(p) {
  const level = t('priority.' + p.priority);
  return p.drill ? t('playing.drill', { priority: lowerFirst(level) }) : level;
}

/** waveform draws the content's peak shape as bars. */
export function waveform(wf, label) {
  const peaks = (wf && wf.peak) || [];
  const n = Math.max(peaks.length, 1);
  return s('svg', { class: 'wave', viewBox: `0 0 ${n} 1000`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label },
    peaks.map((p, i) => s('rect', { x: i + 0.1, width: 0.8, y: 500 - p / 2, height: Math.max(p, 8) })));
}

/**
 * DANGER_ARM_MS is how long a dangerous confirmation's yes button stays
 * disabled after it opens: longer than a double click (Windows allows up
 * to 900 ms between its clicks).
 */
const DANGER_ARM_MS = 1000;

/**
 * confirmDialog asks a yes/no question in a modal; resolves true on yes.
 * A dangerous one opens on its heading (or on the field it asks for), not
 * on its yes button: Enter or a stray key must not send an emergency to
 * every speaker before the officer has read what it does. Its yes button
 * takes no click for DANGER_ARM_MS: the second click of a double click on
 * the button that opened it lands where the yes button may be, and would
 * send the alert unread.
 */
export function confirmDialog(title, body, yes, danger) {
  return new Promise((resolve) => {
    const heading = h('h2', { id: 'dlg-title', tabindex: danger ? '-1' : null }, title);
    const yesButton = h('button', { class: danger ? 'danger' : '', onclick: () => { dlg.close('yes'); } }, yes);
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title' },
      heading,
      body,
      h('div', { class: 'row', style: 'margin-top:1rem' },
        yesButton,
        h('button', { class: 'secondary', onclick: () => dlg.close('no') }, t('common.cancel'))));
    if (danger) {
      yesButton.disabled = true;
      setTimeout(() => { yesButton.disabled = false; }, DANGER_ARM_MS);
    }
    dlg.addEventListener('close', () => { resolve(dlg.returnValue === 'yes'); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
    if (danger) (dlg.querySelector('input, select, textarea') || heading).focus();
  });
}
