// Nhật ký: who did what, when, from where — the audit log of the user's
// area, newest first.

import { api, now } from '../api.js';
import { t, has } from '../i18n.js';
import { h, fill, field, options, fmtDateTime, errorBox, ymd, addDays, vnDate, rfc3339, dayInput, readFields } from '../ui.js';
import { describeDays } from '../recurrence.js';

// RFC3339 finds the API's times (in UTC) in an entry's detail,
// "start=2026-03-02T00:00:00Z", to say them as the console says every
// time: in Vietnam, "07:00 02/03/2026".
const RFC3339 = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})/g;

function detailText(detail) {
  return detail.replace(RFC3339, (at) => fmtDateTime(at));
}

// The kind of thing an action's target is, as the API's names are keyed
// (GET /audit's names; controller/http/audit.go auditTargetKind).
function targetKind(action) {
  if (['cap.recordings', 'cap.auto_start', 'node.enrol_failed'].includes(action)) return '';
  const noun = action.split('.')[0];
  if (['announcement', 'emergency', 'node', 'content', 'session', 'live', 'cap', 'proposal'].includes(noun)) return noun;
  return noun === 'inbound' ? 'announcement' : '';
}

// named shows a thing by its name, its id in small type after it (small)
// and as the tooltip: "Bản tin chiều a000002". Without a name, the id
// alone. An audio file's id is its 64-character hash: the tooltip only.
function named(name, id, small = true) {
  if (!name || name === id) return h('span', {}, id);
  return h('span', { title: id }, name, small ? [' ', h('small', { class: 'muted audit-id' }, id)] : []);
}

// An entry's detail is the API's "key=value" pairs: those an officer
// knows a word for are said with it, ids by their names; the rest, and
// any free text between, as written. A key may hold digits (sha256=).
const PAIR = /\b([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^\s,]*(?:,[^\s,]+)*)/g;

// Free-text details, said in words.
const WHY = {
  'wrong password': 'audit.why.wrong_password', 'unknown user': 'audit.why.unknown_user', locked: 'audit.why.locked',
  'wrong current password': 'audit.why.wrong_current_password', 'unknown, used or expired code': 'audit.why.bad_code',
};

// Facts said whole, the key and its value one phrase ("drill=true" is
// "Diễn tập", "muted=false" "Bật tiếng"): audit.d.<key>_<value>.
const WHOLE = ['drill', 'forced', 'force', 'muted', 'unchanged'];

// wholeWords says such a fact for what the entry is: a live call or an
// all-clear that is no drill is not a "real alarm" (Báo động thật).
function wholeWords(action, detail, key, v) {
  if (key === 'drill' && v === 'false') {
    if (action.startsWith('live.')) return t('audit.d.drill_false_live');
    if (/\bkind=all-clear\b/.test(detail)) return t('audit.d.drill_false_all_clear');
  }
  return t(`audit.d.${key}_${v}`);
}

// releasePairs says an older controller's release.upload detail, "arm64
// <hash>", as the facts a newer one writes (arch=, sha256=).
function releasePairs(detail) {
  const m = /^(\S+) ([0-9a-f]{64})$/.exec(detail);
  return m ? `arch=${m[1]} sha256=${m[2]}` : detail;
}

// rolloutPairs says an older controller's rollout.create detail, the
// version alone ("1.5.0"), as the fact a newer one writes (version=).
function rolloutPairs(detail) {
  return /^[^\s=]+$/.test(detail) ? `version=${detail}` : detail;
}

// recordingsNodes says the CAP recordings set (cap.recordings): for each
// event type the audio it plays first, by its title, the hash as its
// tooltip. This controller writes event="…" content=<hash>; an older one
// wrote "Sóng thần=<hash>,Lũ quét=<hash>".
function recordingsNodes(detail, names) {
  if (detail === '' || detail === 'none=true') return [t('audit.d.none_true')];
  const quoted = (v) => { try { return JSON.parse(v); } catch { return v; } };
  let pairs = [...detail.matchAll(/event=("(?:[^"\\]|\\.)*") content=([0-9a-f]{64})/g)].map((m) => [quoted(m[1]), m[2]]);
  if (!pairs.length) pairs = [...detail.matchAll(/(?:^|,)([^=,][^=]*?)=([0-9a-f]{64})(?=,|$)/g)].map((m) => [m[1], m[2]]);
  if (!pairs.length) return [detail];
  return pairs.flatMap(([event, id], i) => [...(i ? [' · '] : []), t('audit.d.recording_for', { event }) + ': ',
    named(((names || {}).content || {})[id], id, false)]);
}

// autoStartNodes says the CAP auto-start list set (cap.auto_start): the
// event types that play without approval, or that none does any more.
// This controller writes events=["Bão","Lũ quét"]; an older one wrote
// them joined with commas, "Bão,Lũ quét" ("" for none).
function autoStartNodes(detail) {
  let events = null;
  const m = /^events=(\[.*\])$/.exec(detail);
  if (m) {
    try { events = JSON.parse(m[1]); } catch { return [detail]; }
  } else if (!detail.includes('=')) {
    events = detail.split(',').map((e) => e.trim()).filter(Boolean);
  } else return [detail];
  if (!events.length) return [t('audit.d.events_none')];
  return [t('audit.k.events') + ': ' + events.map((e) => '“' + e + '”').join(', ')];
}

// settingsPairs says an older controller's node.settings detail, the
// request's JSON ({"volume":7,"muted":null,…}), as the key=value facts a
// newer one writes; anything else as it is.
function settingsPairs(detail) {
  if (!detail.startsWith('{')) return detail;
  try {
    return Object.entries(JSON.parse(detail)).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`).join(' ') || detail;
  } catch { return detail; }
}

function detailNodes(ctx, action, detail, names) {
  if (WHY[detail]) return [t(WHY[detail])];
  if (action === 'cap.recordings') return recordingsNodes(detail, names);
  if (action === 'cap.auto_start') return autoStartNodes(detail);
  if (action === 'node.settings') detail = settingsPairs(detail);
  if (action === 'release.upload') detail = releasePairs(detail);
  if (action === 'rollout.create') detail = rolloutPairs(detail);
  // In the detail, things by their names, the ids as tooltips only.
  const name = (kind, id) => named(((names || {})[kind] || {})[id], id, false);
  const list = (v) => v.replace(/^\[|\]$/g, '').split(/[\s,]+/).filter(Boolean);
  const joined = (items) => items.flatMap((x, i) => (i ? [', ', x] : [x]));
  const area = (id) => named(ctx.areaName(id), id, false);
  const quoted = (v) => { try { return JSON.parse(v); } catch { return v; } };
  const word = (prefix, v) => (has(prefix + v) ? t(prefix + v) : v);
  // A self-test's nodes= is how many clusters it tested, not their ids.
  const count = (key, v) => action === 'selftest.start' && key === 'nodes' && /^\d+$/.test(v);
  const value = (key, v) => {
    if (count(key, v)) return v;
    switch (key) {
      case 'content': return name('content', v);
      case 'follows': return name('emergency', v);
      case 'cap': return name('cap', v);
      // A CAP alert as received (cap.receive): its status and message
      // type, the standard's words after ours, and what was done with it.
      case 'status': case 'msgType': case 'action':
        return action === 'cap.receive' ? word(`audit.d.${key}_`, v) : detailText(v);
      case 'session': return name('session', v);
      case 'node': case 'nodes': return joined(list(v).map((id) => name('node', id)));
      case 'cancelled': case 'lost': return joined(list(v).map((id) => name('announcement', id)));
      case 'areas': case 'before': return list(v).length ? joined(list(v).map(area)) : '—';
      case 'parent': return v ? area(v) : '—';
      case 'area': return v ? area(v) : '—';
      case 'title': case 'name': case 'name_before':
        if (action === 'node.command') return word('clusters.cmd_', v);
        return v.startsWith('"') ? '“' + quoted(v) + '”' : v;
      case 'days': case 'days_before': return describeDays(quoted(v));
      case 'cut_by': return quoted(v);
      // A live call's end reason is a code; a rollout halt's is the
      // admin's own words.
      case 'reason': return action === 'rollout.halt' ? quoted(v) : word('audit.d.reason_', quoted(v).replace(/ /g, '_'));
      case 'priority': return has('priority.' + v) ? t('priority.' + v) : v;
      case 'role': return has('role.' + v) ? t('role.' + v) : v;
      case 'credentials': return has('audit.d.credentials_' + v) ? t('audit.d.credentials_' + v) : v;
      case 'amplifier_policy': return word('audit.d.amplifier_policy_', v);
      // A live call at volume 0 plays at each cluster's own volume.
      case 'volume': return v === '0' && action.startsWith('live.') ? t('audit.d.volume_node') : v;
      case 'arch': return word('audit.d.arch_', v);
      case 'percent': return v + '%';
      // A release archive's hash, short: its first 12 hex digits tell
      // builds apart; the whole is the tooltip.
      case 'sha256': return h('span', { title: v }, v.length > 12 ? v.slice(0, 12) + '…' : v);
      case 'handling': return word('audit.d.handling_', v);
      case 'kind':
        if (action === 'alarm.ack' && has('alarm.' + v)) return t('alarm.' + v);
        if (action === 'selftest.start') return word('clusters.test_', v);
        return action.startsWith('emergency.') && has('audit.d.' + v.replace('-', '_')) ? t('audit.d.' + v.replace('-', '_')) : v;
      default: return detailText(v);
    }
  };
  const label = (key, v) => {
    if (count(key, v)) return t('audit.k.node_count');
    if (action === 'node.command' && key === 'name') return t('audit.k.command');
    if (action === 'rollout.create' && key === 'node_count') return t('audit.k.rollout_node_count');
    if (action === 'rollout.halt' && key === 'reason') return t('audit.k.halt_reason');
    return has('audit.k.' + key) ? t('audit.k.' + key) : null;
  };
  const pairs = [...detail.matchAll(PAIR)];
  const out = [];
  let last = 0;
  for (let i = 0; i < pairs.length; i++) {
    const [all, key, v] = pairs[i];
    const between = detail.slice(last, pairs[i].index);
    last = pairs[i].index + all.length;
    // Nothing said: an empty list, a count of nought conflicts, a live
    // call nobody cut.
    const none = ((key === 'nodes' || key === 'areas') && v === '') || (key === 'conflicts' && v === '0') || (key === 'cut_by' && v === '""');
    // Separators between pairs (" ", ", ") read as the dots the console
    // puts between facts; other words stay.
    if (out.length && /^[\s,]*$/.test(between)) {
      if (!none) out.push(' · ');
    } else if (between) out.push(detailText(between));
    if (none) continue;
    if (WHOLE.includes(key) && has(`audit.d.${key}_${v}`)) { out.push(wholeWords(action, detail, key, v)); continue; }
    if (key === 'conflicts') { out.push(t('audit.d.conflicts_forced', { n: v })); continue; }
    // A change, "start_before=05:30 start=06:00": one fact, before → after.
    const base = key.endsWith('_before') ? key.slice(0, -'_before'.length) : '';
    const next = pairs[i + 1];
    if (base && next && next[1] === base && /^\s*$/.test(detail.slice(last, next.index))) {
      out.push((label(base, next[2]) || base) + ': ', value(base, v), ' → ', value(base, next[2]));
      last = next.index + next[0].length;
      i++;
      continue;
    }
    // One alone (an older entry's, cut short): said as what it was.
    const l = base && label(base, v) ? `${label(base, v)} (${t('audit.before')})` : label(key, v);
    out.push(l ? l + ': ' : key + '=', value(base || key, v));
  }
  if (last < detail.length) out.push(detailText(detail.slice(last)));
  return out.flat().flatMap((x) => (typeof x === 'string' ? phrases(x) : [x]));
}

// The English phrases of a bulletin's entry ("2 conflicts forced, 0
// proposals") and of an alert stopped by its all-clear ("drill=true by
// all-clear") in words; those of nought left out.
function phrases(s) {
  return [s.replace(/,?\s*(\d+) (conflicts? forced|proposals?)/g, (all, n, what) => {
    if (n === '0') return '';
    return ' · ' + t(what.endsWith('forced') ? 'audit.d.conflicts_forced' : 'audit.d.proposals', { n });
  }).replace(/^\s*by all-clear$/, () => ' · ' + t('audit.d.by_all_clear'))];
}

// The action in words, the code as its tooltip; a code this console has
// no words for (a newer controller's) as the code.
function actionCell(action) {
  return has('audit.act.' + action) ? h('span', { title: action }, t('audit.act.' + action)) : h('code', {}, action);
}

// Who: a username as it is; a cluster by its name; the controller itself.
function actorCell(actor, names) {
  if (actor === 'system') return t('audit.actor_system');
  if (actor === 'anonymous') return t('audit.actor_anonymous');
  if (actor.startsWith('node:')) {
    const id = actor.slice(5);
    return h('span', {}, t('audit.actor_node'), ' ', named(((names || {}).node || {})[id], id));
  }
  return actor;
}

function targetCell(ctx, e, names) {
  if (!e.target) return '';
  const kind = targetKind(e.action);
  if (kind) return named(((names || {})[kind] || {})[e.target], e.target, kind !== 'content');
  if (e.action === 'area.create') return named(ctx.areaName(e.target), e.target);
  if (e.action === 'release.upload') return t('audit.release_version', { version: e.target });
  return e.target;
}

export async function render(ctx, main) {
  const today = ymd(now());
  const actor = h('input', { id: 'audit-actor', autocapitalize: 'none' });
  const areaSel = h('select', { id: 'audit-area' }, options([['', t('audit.all_areas')], ...ctx.areaOptions()], ''));
  const from = dayInput({ id: 'audit-from', value: addDays(today, -7), required: true });
  const to = dayInput({ id: 'audit-to', value: today, required: true });
  const body = h('div');
  const cols = [t('common.time'), t('audit.actor'), t('audit.action'), t('audit.target'), t('common.area'), t('clusters.detail'), t('audit.remote')];
  const load = async () => {
    const v = readFields({ from, to });
    if (!v) return;
    const { entries, names } = await api('GET', '/audit', undefined, {
      actor: actor.value.trim(), area: areaSel.value, from: rfc3339(vnDate(v.from)), to: rfc3339(vnDate(addDays(v.to, 1))), limit: 10000,
      order: 'newest', // past the limit, the newest are the ones kept
    });
    fill(body, entries.length === 0 ? h('p', { class: 'muted' }, t('audit.none')) :
      h('div', { class: 'table-wrap' }, h('table', { id: 'audit-table', class: 'cards' },
        h('thead', {}, h('tr', {}, cols.map((x) => h('th', {}, x)))),
        // On a phone each entry is a card, each fact under its column's
        // name: as a table the detail was squeezed to a word a line.
        h('tbody', {}, entries.map((e) => h('tr', {}, [
          fmtDateTime(e.at), actorCell(e.actor, names), actionCell(e.action), targetCell(ctx, e, names),
          e.area ? ctx.areaName(e.area) : '', detailNodes(ctx, e.action, e.detail || '', names), e.remote || '',
        ].map((v, i) => h('td', { dataset: (Array.isArray(v) ? v.length : v !== '') ? { label: cols[i] } : {}, style: i === 5 ? 'word-break:break-word' : null }, v))))))));
  };
  fill(main, h('h1', {}, t('audit.title')),
    h('form', { class: 'panel no-print', onsubmit: (e) => { e.preventDefault(); load().catch((err) => fill(body, errorBox(err))); } },
      h('div', { class: 'form-grid' }, field(t('audit.actor'), actor), field(t('common.area'), areaSel), field(t('reports.from'), from), field(t('audit.to'), to)),
      h('div', { class: 'row', style: 'margin-top:.6rem' }, h('button', { type: 'submit' }, t('audit.show')))),
    h('section', { class: 'panel' }, body));
  await load();
}
