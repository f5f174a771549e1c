// recurrence.js: recurrence in plain words ("Hằng ngày lúc 05:30") and the
// RFC 5545 rule the API takes (FREQ=DAILY). The officer picks words; the
// rule is derived, never typed.

import { t } from './i18n.js';

/** DAYS are RFC 5545 weekday codes, Monday first as Vietnamese calendars are. */
export const DAYS = ['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'];
const WEEKDAYS = ['MO', 'TU', 'WE', 'TH', 'FR'];

/**
 * dayName is a day as Vietnamese writes it inside a sentence: "thứ Hai",
 * "Chủ nhật" ("Hằng tuần vào thứ Hai"). The names live once, in day.*.
 */
export function dayName(d) { return t('day.' + d); }

/**
 * dayLabel is a day beginning a label or a list item: "Thứ Hai", "Chủ
 * nhật" (a form's boxes; "Thứ Hai đến thứ Sáu").
 */
export function dayLabel(d) { return capitalize(dayName(d)); }

function capitalize(s) { return s.charAt(0).toLocaleUpperCase() + s.slice(1); }

/**
 * toRule turns a choice into an rrule: kind is once, daily, weekdays or
 * weekly (with days, a subset of DAYS). Once has no rule.
 */
export function toRule(kind, days) {
  switch (kind) {
    case 'daily': return 'FREQ=DAILY';
    case 'weekdays': return 'FREQ=WEEKLY;BYDAY=' + WEEKDAYS.join(',');
    case 'weekly': {
      const picked = DAYS.filter((d) => (days || []).includes(d));
      if (picked.length === 0) throw new Error(t('rec.pick_day'));
      return 'FREQ=WEEKLY;BYDAY=' + picked.join(',');
    }
    default: return '';
  }
}

/** fromRule reads back the rules toRule writes; anything else is "other". */
export function fromRule(rrule) {
  if (!rrule) return { kind: 'once', days: [] };
  if (rrule === 'FREQ=DAILY') return { kind: 'daily', days: [] };
  const m = /^FREQ=WEEKLY;BYDAY=([A-Z,]+)$/.exec(rrule);
  if (m) {
    const days = m[1].split(',');
    if (days.length === 5 && WEEKDAYS.every((d) => days.includes(d))) return { kind: 'weekdays', days };
    if (days.every((d) => DAYS.includes(d))) return { kind: 'weekly', days };
  }
  return { kind: 'other', days: [] };
}

/**
 * clock writes a time of day as the calendar and the tables do, HH:MM with
 * a leading zero ("05:30"): one page once said "lúc 5:30" beside "05:30".
 */
export function clock(hhmm) {
  const [H, M] = hhmm.split(':');
  return `${String(Number(H)).padStart(2, '0')}:${M}`;
}

/**
 * describe says a recurrence in words: kind and days as for toRule, time
 * "HH:MM" or a session {name, start}, date "DD/MM/YYYY" for a single play.
 */
export function describe({ kind, days, time, session, date }) {
  const when = session ? t('rec.in_session', { name: session.name, time: clock(session.start) }) : t('rec.at', { time: clock(time || '00:00') });
  switch (kind) {
    case 'daily': return t('rec.daily', { when });
    case 'weekdays': return t('rec.weekdays', { when });
    case 'weekly': {
      const names = DAYS.filter((d) => (days || []).includes(d)).map(dayName);
      return t('rec.weekly', { days: names.join(', '), when });
    }
    case 'other': return t('rec.other', { when });
    default: return t('rec.once', { when, date: date || '' });
  }
}

/**
 * sessionDays reads a session's days rule back into the choice the session
 * form offers: every day ("" or FREQ=DAILY), days of the week
 * (FREQ=WEEKLY;BYDAY=…, Monday first), or other for a rule the form
 * cannot show (monthly, every other week), which it keeps as it is.
 */
export function sessionDays(rule) {
  const r = (rule || '').trim();
  if (r === '' || r === 'FREQ=DAILY') return { kind: 'daily', days: [] };
  const m = /^FREQ=WEEKLY;BYDAY=([A-Z,]+)$/.exec(r);
  if (m && m[1].split(',').every((d) => DAYS.includes(d))) return { kind: 'weekly', days: DAYS.filter((d) => m[1].split(',').includes(d)) };
  return { kind: 'other', days: [] };
}

/**
 * sessionDaysRule is the days rule for the days of the week picked in the
 * session form: "" (every day) when all seven are. With none it throws,
 * in the officer's words.
 */
export function sessionDaysRule(days) {
  const picked = DAYS.filter((d) => (days || []).includes(d));
  if (picked.length === 0) throw new Error(t('session_days.none'));
  return picked.length === DAYS.length ? '' : 'FREQ=WEEKLY;BYDAY=' + picked.join(',');
}

/**
 * describeDays says a session's days in words, as a label that begins
 * with the first day: "Hằng ngày", "Thứ Hai đến thứ Sáu" (three or more
 * days in a row), "Chủ nhật", "Thứ Hai, thứ Tư"; a rule the form cannot
 * show is given as the rule.
 */
export function describeDays(rule) {
  const { kind, days } = sessionDays(rule);
  if (kind === 'daily' || days.length === DAYS.length) return t('session_days.every_day');
  if (kind === 'other') return t('session_days.rule', { rule: rule.trim() });
  const names = days.map((d, i) => (i === 0 ? dayLabel(d) : dayName(d)));
  if (days.length >= 3 && DAYS.indexOf(days[days.length - 1]) - DAYS.indexOf(days[0]) === days.length - 1) {
    return t('session_days.range', { from: names[0], to: names[names.length - 1] });
  }
  return names.join(', ');
}
