// recurrence.js: recurrence in plain words ("Hằng ngày lúc 5:30") and the
// RFC 5545 rule the API takes (FREQ=DAILY). The officer picks words; the
// rule is derived, never typed.

import { t } from './i18n.js';

/** DAYS are RFC 5545 weekday codes, Monday first as Vietnamese calendars are. */
export const DAYS = ['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'];
const WEEKDAYS = ['MO', 'TU', 'WE', 'TH', 'FR'];

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

/** clock writes 05:30 as 5:30, as people say it. */
export function clock(hhmm) {
  const [H, M] = hhmm.split(':');
  return `${Number(H)}:${M}`;
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
      const names = DAYS.filter((d) => (days || []).includes(d)).map((d) => t('day.' + d));
      return t('rec.weekly', { days: names.join(', '), when });
    }
    case 'other': return t('rec.other', { when });
    default: return t('rec.once', { when, date: date || '' });
  }
}
