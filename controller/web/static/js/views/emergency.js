// PHÁT KHẨN CẤP: choose the areas, the message (typed text or stored
// audio), confirm twice with the number of clusters that will sound, then
// watch every cluster acknowledge it live; cancel, or send the all-clear.
// A drill (diễn tập) is striped purple from top to bottom so nobody takes
// it for the real thing.

import { api, apiURL, now, failingChecks, keptEmergency } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, field, options, badge, errorBox, errorText, errorTitle, toast, confirmDialog, fmtDateTime, fmtTime, fmtNumber, reasonText, refreshMs, clusterLink, clusterNames, ymd, healthBanners, watchHealth } from '../ui.js';
import { standingList } from '../standing.js';

export async function render(ctx, main, params) {
  let list;
  try {
    list = await api('GET', '/emergency');
  } catch (err) {
    if (err.status !== 404) throw err;
    // This controller has no emergency API (docs/web.md).
    fill(main, h('h1', { class: 'emergency-title' }, t('nav.emergency')),
      h('div', { class: 'error-box', role: 'alert' }, t('emergency.pending_api')));
    return undefined;
  }
  if (params[0]) return board(ctx, main, params[0]);
  return compose(ctx, main, list.emergencies || []);
}

async function compose(ctx, main, recent) {
  // Which content the clusters keep is counted over every cluster in
  // scope (a province's 10,000): the form does not wait for it.
  const standingSoon = standingList().catch(() => ({ standing: [] }));
  const [{ nodes: opened }, { content }] = await Promise.all([api('GET', '/nodes'), api('GET', '/content')]);
  let nodesAt = new Date();
  // The clusters as the form opened; read again as the officer sends (the
  // form may stay open for minutes while the message is typed, and in a
  // storm clusters lose power), so that the confirmation's counts and its
  // silent clusters are those of the moment.
  let nodes = opened;
  // What a CAP alert waiting for approval will play, when its type has a
  // recording (GET /cap/recordings); titles from the library.
  const recordingsOf = await api('GET', '/cap/recordings').then((r) => r.recordings || {}, () => ({}));
  const titles = new Map(content.map((c) => [c.id, c.title]));
  const playsFor = (event) => {
    const key = Object.keys(recordingsOf).find((e) => e.trim().toLowerCase() === (event || '').trim().toLowerCase());
    return key ? titles.get(recordingsOf[key]) || recordingsOf[key] : '';
  };
  const caps = await capWaiting(ctx, nodes, playsFor);
  // What stops or endangers an alert on the controller's side (its
  // broker away, its disk nearly full, …: GET /health) is said before the
  // officer sends, so that they warn by other means at once and call whom
  // can mend it, not after a refusal; asked again while the form stays
  // open, and as they send, in the confirmation.
  const admin = ctx.may('system.manage');
  const health = h('div', { id: 'em-health' });
  const count = (area) => {
    const inside = nodes.filter((n) => within(ctx, n.area, area));
    return { all: inside.length, online: inside.filter((n) => n.status.state === 'online').length };
  };
  const areaLabel = (id, label) => {
    const c = count(id);
    return `${label} — ${t('emergency.area_count', { online: c.online, all: c.all })}`;
  };
  const boxes = ctx.areaOptions().map(([id, label]) => {
    const box = h('input', { type: 'checkbox', value: id, id: 'em-area-' + id, name: 'em-area' });
    // The tree's indentation is no-break spaces, kept as the line wraps on
    // a phone's narrow screen.
    return h('label', { class: 'check', for: 'em-area-' + id }, box, h('span', { dataset: { label } }, areaLabel(id, label)));
  });
  // The areas' counts from the cluster list read again (as the officer
  // sends): a confirmation cancelled leaves the form saying the same.
  const relabel = () => {
    for (const l of boxes) {
      const span = l.querySelector('span');
      span.textContent = areaLabel(l.querySelector('input').value, span.dataset.label);
    }
  };
  const drill = h('input', { type: 'checkbox', id: 'em-drill' });
  const how = h('select', { id: 'em-how' }, options([['text', t('emergency.by_text')], ['content', t('emergency.by_content')]], 'text'));
  const text = h('textarea', { id: 'em-text', rows: 4, maxlength: 10000 });
  // Content kept on the clusters comes first: it sounds at the end of the
  // lead, where any other must be downloaded by each cluster first.
  const contentSel = h('select', { id: 'em-content' });
  // A recording played before the typed words (the intro): a warning kept
  // on the clusters sounds at once while they download the words.
  const introSel = h('select', { id: 'em-intro' });
  let kept = new Map(); // content id → its standing entry
  const contentOptions = (sel, none) => {
    const chosen = sel.value;
    fill(sel, h('option', { value: '' }, none),
      kept.size ? h('optgroup', { label: t('emergency.standing_group') }, [...kept.values()].map((s) =>
        h('option', { value: s.content, dataset: { standing: 'yes' } }, t('emergency.standing_option', { title: s.title, ready: fmtNumber(s.ready), nodes: fmtNumber(s.nodes) })))) : null,
      h('optgroup', { label: kept.size ? t('emergency.other_group') : t('emergency.by_content') },
        content.filter((c) => !kept.has(c.id)).map((c) => h('option', { value: c.id }, c.title))));
    sel.value = chosen;
  };
  const allOptions = () => {
    contentOptions(contentSel, t('programme.pick_content'));
    contentOptions(introSel, t('emergency.no_intro'));
  };
  allOptions();
  standingSoon.then(({ standing }) => {
    kept = new Map(standing.map((s) => [s.content, s]));
    allOptions();
    contentSel.dataset.standing = 'loaded';
  });
  // ready says in the confirmation whether the clusters have the message
  // or must download it first.
  const ready = () => {
    const typed = text.value.trim();
    const s = how.value === 'content' ? kept.get(contentSel.value) : [...kept.values()].find((k) => k.text && k.text === typed);
    if (s) return h('p', { id: 'em-confirm-ready' }, t('emergency.confirm_standing', { ready: fmtNumber(s.ready), nodes: fmtNumber(s.nodes) }));
    return h('p', { id: 'em-confirm-ready', class: 'hint' }, t('emergency.confirm_download'));
  };
  const repeat = h('input', { type: 'number', id: 'em-repeat', min: 1, max: 10, value: 3 });
  const volume = h('select', { id: 'em-volume' }, volumeOptions(FULL_VOLUME));
  const status = h('div', { 'aria-live': 'polite' });
  const banner = h('div', { class: 'drill-banner', hidden: true, id: 'em-drill-banner' }, t('emergency.drill_banner'));
  const submit = h('button', { type: 'submit', class: 'danger', id: 'em-send', style: 'font-size:1.3rem;padding:.8rem 1.6rem' }, t('emergency.next'));
  const update = () => {
    banner.hidden = !drill.checked;
    main.classList.toggle('drill', drill.checked);
    text.closest('.field').hidden = how.value !== 'text';
    introSel.closest('.field').hidden = how.value !== 'text';
    contentSel.closest('.field').hidden = how.value !== 'content';
    submit.textContent = drill.checked ? t('emergency.next_drill') : t('emergency.next');
  };
  drill.addEventListener('change', update);
  how.addEventListener('change', update);

  // One send at a time, from the click until the confirmation is answered
  // and the alert sent: a double click on a slow link (the cluster list is
  // read again first) opened a second confirmation, and a second alert.
  let sending = false;
  const form = h('form', {
    class: 'panel', id: 'em-form', onsubmit: async (e) => {
      e.preventDefault();
      if (sending) return;
      sending = true;
      submit.disabled = true;
      try {
        await send();
      } finally {
        sending = false;
        submit.disabled = false;
      }
    },
  },
  h('label', { class: 'check', for: 'em-drill', style: 'font-size:1.1rem' }, drill, t('emergency.drill')),
  h('fieldset', {}, h('legend', {}, t('emergency.areas')), boxes),
  h('div', { class: 'form-grid' }, field(t('emergency.how'), how, t('emergency.how_hint')), field(t('emergency.repeat'), repeat), field(t('clusters.volume'), volume, t('emergency.volume_hint'))),
  field(t('emergency.text'), text, t('emergency.text_hint')),
  field(t('emergency.intro'), introSel, t('emergency.intro_hint')),
  field(t('programme.content'), contentSel),
  h('div', { class: 'row', style: 'margin-top:1rem' }, submit), status);

  async function send() {
    fill(status);
    const freshSoon = api('GET', '/nodes').then((r) => r.nodes, () => null);
    const failingSoon = failingChecks().catch(() => null);
    const nodesWait = new Promise((r) => setTimeout(() => r(null), NODES_WAIT_MS));
    const areas = boxes.map((l) => l.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
    // An area includes its subtree: drop areas already inside a chosen one.
    const targets = ctx.outermost(areas);
    if (targets.length === 0) { fill(status, h('p', { class: 'error' }, t('emergency.pick_area'))); return; }
    if (how.value === 'text' && !text.value.trim()) { fill(status, h('p', { class: 'error' }, t('emergency.need_text'))); return; }
    if (how.value === 'content' && !contentSel.value) { fill(status, h('p', { class: 'error' }, t('emergency.need_content'))); return; }
    // The list read again, waited for a moment: if it does not come
    // the confirmation says how old its counts are.
    fill(status, h('p', { class: 'hint', id: 'em-checking-nodes' }, t('emergency.checking_nodes')));
    const [fresh, failing] = await Promise.all([Promise.race([freshSoon, nodesWait]), Promise.race([failingSoon, nodesWait])]);
    fill(status);
    if (fresh) {
      [nodes, nodesAt] = [fresh, new Date()];
      relabel();
    }
    // The alert targets the enrolled clusters: one waiting for its code
    // (pole not put up yet) is said apart, not counted as offline.
    const inAreas = nodes.filter((x) => targets.some((a) => within(ctx, x.area, a)));
    const n = inAreas.filter((x) => x.enrolled_at);
    const awaiting = inAreas.length - n.length;
    const online = n.filter((x) => x.status.state === 'online').length;
    // Online clusters whose own report says they cannot sound: the
    // officer warns those places by other means at once, and calls a
    // technician, rather than learn it from the board afterwards.
    const mute = n.filter((x) => x.status.state === 'online' && silencing(x).length > 0);
    // And clusters that will refuse the alert itself: online or not, they
    // will not sound it when it reaches them.
    const refuse = n.filter(deaf);
    // The confirmation says whether the clusters keep the message: the
    // list of kept content, read as the form opened, may still be on its
    // way. Wait for it a moment, not longer: the alert comes first.
    if (contentSel.dataset.standing !== 'loaded') {
      fill(status, h('p', { class: 'hint', id: 'em-checking' }, t('emergency.checking_standing')));
      await Promise.race([standingSoon, new Promise((r) => setTimeout(r, STANDING_WAIT_MS))]);
      fill(status);
    }
    const ok = await confirmDialog(drill.checked ? t('emergency.confirm_drill') : t('emergency.confirm_title'),
      h('div', { id: 'em-confirm' },
        drill.checked ? h('div', { class: 'drill-banner' }, t('emergency.drill_banner')) : null,
        failing ? healthBanners(failing, 'em-confirm', admin, 'emergency') : null,
        h('p', { class: 'stat', id: 'em-confirm-count' }, willSound(n.length, Number(volume.value))),
        h('p', {}, t('emergency.online_now', { online, all: n.length })),
        awaiting > 0 ? h('p', { class: 'hint', id: 'em-confirm-awaiting' }, t('emergency.awaiting_enrolment', { n: fmtNumber(awaiting) })) : null,
        fresh ? null : h('p', { class: 'error', id: 'em-confirm-stale' }, t('emergency.counts_as_of', { time: fmtTime(nodesAt) })),
        mute.length ? h('div', { class: 'error-box', id: 'em-confirm-mute' },
          h('p', {}, t('emergency.cannot_sound', { n: mute.length })),
          h('ul', {}, mute.slice(0, MUTE_LISTED).map((x) => h('li', {}, `${x.name || x.id} (${ctx.areaName(x.area)}): ${silencing(x).map((k) => t('alarm.' + k)).join(', ')}`))),
          mute.length > MUTE_LISTED ? h('p', {}, t('emergency.cannot_sound_more', { n: mute.length - MUTE_LISTED })) : null) : null,
        refuse.length ? h('div', { class: 'error-box', id: 'em-confirm-deaf' },
          h('p', {}, t('emergency.cannot_hear', { n: refuse.length })),
          h('ul', {}, refuse.slice(0, MUTE_LISTED).map((x) => h('li', {}, `${x.name || x.id} (${ctx.areaName(x.area)}): ${t('emergency.key_mismatch')}`))),
          refuse.length > MUTE_LISTED ? h('p', {}, t('emergency.cannot_sound_more', { n: refuse.length - MUTE_LISTED })) : null) : null,
        how.value === 'text' && introSel.value ? h('p', { id: 'em-confirm-intro' }, t('emergency.confirm_intro', { title: titles.get(introSel.value) || introSel.value })) : null,
        ready(),
        h('p', {}, targets.map((a) => ctx.areaName(a)).join(', '))),
      drill.checked ? t('emergency.send_drill') : t('emergency.send'), true);
    if (!ok) return;
    try {
      const body = { targets: { areas: targets }, repeat: Number(repeat.value) || 3, volume: Number(volume.value), drill: drill.checked };
      if (how.value === 'text') {
        body.text = text.value.trim();
        if (introSel.value) body.intro_content_id = introSel.value;
      } else body.content_id = contentSel.value;
      const em = await api('POST', '/emergency', body);
      location.hash = `#/emergency/${encodeURIComponent(em.id)}`;
    } catch (err) {
      // Stored but not published (the broker away): its board shows the
      // clusters it reaches as it is sent again.
      const kept = keptEmergency(err);
      if (kept) {
        location.hash = `#/emergency/${encodeURIComponent(kept.id)}`;
        return;
      }
      // Refused in the officer's words; a server error says the alert may
      // not have gone out and what to do, and the red warnings above are
      // read again at once (a disk that filled meanwhile).
      fill(status, errorBox(err, 'emergency'));
      failingChecks().then((failing) => fill(health, healthBanners(failing, 'em', admin, 'emergency')));
    }
  }

  const autoStart = await capAutoStart(ctx);
  const recordings = await capRecordings(ctx, content, standingSoon);
  const feeds = await capFeeds();
  const stopHealth = watchHealth(health, 'em', admin, 'emergency');
  fill(main, banner, h('h1', { class: 'emergency-title' }, t('nav.emergency')), health, caps.section, feeds.section, form,
    h('section', { class: 'panel', 'aria-labelledby': 'h-recent' }, h('h2', { id: 'h-recent' }, t('emergency.recent')),
      recent.length === 0 ? h('p', { class: 'muted' }, t('emergency.none')) :
        h('ul', {}, recent.slice().sort((a, b) => Date.parse(b.issued) - Date.parse(a.issued)).slice(0, 20).map((e) => h('li', {},
          h('a', { href: `#/emergency/${encodeURIComponent(e.id)}` }, e.title || e.id), ' · ', fmtDateTime(e.issued), ' · ',
          e.drill ? h('strong', {}, t('emergency.drill_short')) : null, ' ', badge(e.state, 'emstate.'))))), autoStart, recordings);
  update();
  return () => { stopHealth(); caps.stop(); feeds.stop(); main.classList.remove('drill'); };
}

/**
 * willSound says how many clusters will sound and how loud: the volume
 * chosen (a drill is often played low), full only when it is 15 or none
 * was chosen (a CAP alert plays at full volume).
 */
function willSound(n, vol) {
  return vol && vol < FULL_VOLUME ? t('emergency.will_sound_at', { n, volume: vol }) : t('emergency.will_sound', { n });
}

/**
 * clearSounds says how loud an all-clear will sound, as willSound does for
 * the alert: the volume chosen, full when it is 15.
 */
function clearSounds(vol) {
  return vol && vol < FULL_VOLUME ? t('emergency.all_clear_sounds_at', { volume: vol }) : t('emergency.all_clear_sounds');
}

/** volumeOptions makes the choices of an alert's volume, loudest first, with selected chosen. */
function volumeOptions(selected) {
  return options(Array.from({ length: FULL_VOLUME }, (_, i) => [String(FULL_VOLUME - i), i === 0 ? t('emergency.full') : String(FULL_VOLUME - i)]), String(selected));
}

/** FULL_VOLUME is the loudest of the volumes 1–15 an alert is played at. */
const FULL_VOLUME = 15;

const CAP_REFRESH_MS = refreshMs(15000);

/**
 * pendingCaps returns the CAP alerts (from a warning service) that wait
 * for an officer's approval and can still play, or null when this
 * controller takes no CAP alerts. The API picks them out: among the
 * newest alerts of every kind, one waiting since before them was missed.
 */
export async function pendingCaps(at) {
  let list;
  try {
    list = await api('GET', '/cap', undefined, { action: 'pending', limit: 1000 });
  } catch (err) {
    if (err.status === 404 || err.status === 503) return null;
    throw err;
  }
  return (list.alerts || []).filter((a) => a.action === 'pending' && (!a.expires || Date.parse(a.expires) > at));
}

/** waitsFor says, in the officer's words, why a CAP alert waits. */
function waitsFor(a) {
  const reason = a.reason || '';
  if (reason.startsWith('could not be played')) return t('cap.failed_before');
  if (reason.startsWith('it was sent at')) return t('cap.stale', { time: fmtDateTime(a.sent) });
  if (reason.startsWith('scope ')) return t('cap.scope', { scope: reason.slice(6).split(/[\s:(]/)[0] });
  return t('cap.not_auto', { event: a.event });
}

/**
 * capWaiting is the panel of CAP alerts waiting for approval, refreshed
 * every 15 s: what each says, where it goes, and one button that approves
 * and plays it (for an officer who may alert every one of its areas; the
 * others see who must approve it).
 */
async function capWaiting(ctx, nodes, playsFor) {
  const section = h('section', { class: 'panel cap-waiting', id: 'cap-pending', 'aria-labelledby': 'h-cap', hidden: true });
  const show = (alerts) => {
    section.hidden = !alerts || alerts.length === 0;
    if (section.hidden) { fill(section); return; }
    fill(section, h('h2', { id: 'h-cap' }, t('cap.waiting', { n: alerts.length })), h('p', { class: 'hint' }, t('cap.waiting_hint')),
      h('ul', { class: 'cap-list' }, alerts.map((a) => {
        const drill = a.status === 'Exercise';
        const targets = a.targets || [];
        const n = nodes.filter((x) => x.enrolled_at && targets.some((ar) => within(ctx, x.area, ar))).length;
        const recording = playsFor(a.event);
        const approve = async () => {
          const ok = await confirmDialog(drill ? t('cap.confirm_drill') : t('cap.confirm'),
            h('div', { id: 'cap-confirm' },
              drill ? h('div', { class: 'drill-banner' }, t('emergency.drill_banner')) : null,
              h('p', { class: 'stat' }, willSound(n)),
              h('p', {}, targets.map((ar) => ctx.areaName(ar)).join(', ')),
              recording ? h('p', { class: 'cap-recording' }, t('cap.plays_recording', { title: recording })) : null,
              h('p', {}, a.text || a.headline || a.event)),
            drill ? t('emergency.send_drill') : t('emergency.send'), true);
          if (!ok) return;
          try {
            const r = await api('POST', `/cap/${encodeURIComponent(a.id)}/approve`);
            if (r.emergency && r.emergency.id) location.hash = `#/emergency/${encodeURIComponent(r.emergency.id)}`;
          } catch (err) {
            const kept = keptEmergency(err); // approved, not published: as from the form
            if (kept) { location.hash = `#/emergency/${encodeURIComponent(kept.id)}`; return; }
            toast(errorText(err, 'emergency'), true, errorTitle(err, 'emergency')); refresh();
          }
        };
        return h('li', { dataset: { cap: a.id } },
          drill ? h('div', { class: 'drill-banner' }, t('emergency.drill_banner')) : null,
          h('p', {}, h('strong', {}, a.headline || a.event), ' · ', a.event, ' · ', t('cap.from', { sender: a.sender, time: fmtDateTime(a.sent) })),
          a.text ? h('p', {}, a.text) : null,
          recording ? h('p', { class: 'cap-recording' }, t('cap.plays_recording', { title: recording })) : null,
          // The clusters of areas above the officer's are not theirs to count.
          h('p', {}, t('common.area'), ': ', targets.map((ar) => ctx.areaName(ar)).join(', '), ctx.covers(targets) ? ' — ' + t('cap.clusters', { n }) : '',
            a.expires ? ' · ' + t('cap.expires', { time: fmtDateTime(a.expires) }) : ''),
          h('p', { class: 'hint' }, waitsFor(a)),
          ctx.may('emergency') && ctx.covers(targets) ?
            h('button', { type: 'button', class: 'danger', id: 'cap-approve-' + a.id, onclick: approve }, drill ? t('cap.approve_drill') : t('cap.approve')) :
            h('p', { class: 'muted' }, t('cap.higher_up')));
      })));
  };
  const refresh = async () => {
    try { show(await pendingCaps(now().getTime())); } catch (err) { /* the next refresh tries again */ }
  };
  show(await pendingCaps(now().getTime()).catch(() => null));
  const timer = setInterval(refresh, CAP_REFRESH_MS);
  return { section, stop: () => clearInterval(timer) };
}

/**
 * capAutoStart is the editor of the CAP event types that play without
 * approval, for a user over the whole tree (the only ones who may change
 * it); null for others or when this controller takes no CAP alerts.
 */
async function capAutoStart(ctx) {
  if (ctx.me.area || !ctx.may('emergency')) return null;
  let list;
  try {
    list = await api('GET', '/cap/auto-start');
  } catch (err) {
    if (err.status === 404 || err.status === 503) return null;
    throw err;
  }
  const events = h('textarea', { id: 'cap-auto-events', rows: 4 });
  events.value = (list.events || []).join('\n');
  const status = h('div', { 'aria-live': 'polite' });
  const save = async (e) => {
    e.preventDefault();
    fill(status);
    const wanted = events.value.split('\n').map((x) => x.trim()).filter((x) => x);
    try {
      const saved = await api('PUT', '/cap/auto-start', { events: wanted });
      events.value = (saved.events || []).join('\n');
      toast(t('cap.auto_saved'));
    } catch (err) { fill(status, errorBox(err)); }
  };
  return h('form', { class: 'panel', id: 'cap-auto-start', 'aria-labelledby': 'h-cap-auto', onsubmit: save },
    h('h2', { id: 'h-cap-auto' }, t('cap.auto_title')),
    field(t('cap.auto_events'), events, t('cap.auto_hint')),
    h('div', { class: 'row' }, h('button', { type: 'submit', id: 'cap-auto-save' }, t('cap.auto_save'))), status);
}

/**
 * capRecordings is the editor of the recordings that CAP alerts of a type
 * play instead of their text read out (a fixed message per kind of alert,
 * as J-Alert plays), for a user over the whole tree; null for others or
 * when this controller takes no CAP alerts. Content kept on the clusters
 * is offered first: it sounds at once.
 */
async function capRecordings(ctx, content, standingSoon) {
  if (ctx.me.area || !ctx.may('emergency')) return null;
  let saved;
  try {
    saved = (await api('GET', '/cap/recordings')).recordings || {};
  } catch (err) {
    if (err.status === 404 || err.status === 503) return null;
    throw err;
  }
  // What the clusters keep comes later (the form does not wait for it):
  // the choices are sorted again then.
  let kept = null;
  const choices = (sel) => {
    const chosen = sel.value;
    fill(sel, h('option', { value: '' }, t('programme.pick_content')),
      kept ? [
        h('optgroup', { label: t('emergency.standing_group') }, content.filter((c) => kept.has(c.id)).map((c) => h('option', { value: c.id }, c.title))),
        h('optgroup', { label: t('cap.rec_not_kept') }, content.filter((c) => !kept.has(c.id)).map((c) => h('option', { value: c.id }, c.title)))] :
        content.map((c) => h('option', { value: c.id }, c.title)));
    sel.value = chosen;
  };
  const rows = h('div', { id: 'cap-rec-rows' });
  standingSoon.then(({ standing }) => {
    kept = new Set((standing || []).map((s) => s.content));
    for (const sel of rows.querySelectorAll('select')) choices(sel);
    rows.dataset.standing = 'loaded';
  });
  let n = 0;
  const row = (event, id) => {
    const i = n++;
    const input = h('input', { id: `cap-rec-event-${i}`, value: event, maxlength: 200, placeholder: t('cap.rec_event_example') });
    const sel = h('select', { id: `cap-rec-content-${i}` }, h('option', { value: id }, ''));
    sel.value = id;
    choices(sel);
    const line = h('div', { class: 'row cap-rec', dataset: { row: String(i) } },
      field(t('cap.rec_event'), input), field(t('cap.rec_content'), sel),
      h('button', { type: 'button', class: 'secondary', onclick: () => line.remove() }, t('cap.rec_remove')));
    rows.append(line);
  };
  for (const [event, id] of Object.entries(saved).sort(([a], [b]) => a.localeCompare(b))) row(event, id);
  const status = h('div', { 'aria-live': 'polite' });
  const save = async (e) => {
    e.preventDefault();
    fill(status);
    const recordings = {};
    for (const line of rows.querySelectorAll('.cap-rec')) {
      const event = line.querySelector('input').value.trim();
      const id = line.querySelector('select').value;
      if (event && id) recordings[event] = id;
    }
    try {
      await api('PUT', '/cap/recordings', { recordings });
      toast(t('cap.rec_saved'));
    } catch (err) { fill(status, errorBox(err)); }
  };
  return h('form', { class: 'panel', id: 'cap-recordings', 'aria-labelledby': 'h-cap-rec', onsubmit: save },
    h('h2', { id: 'h-cap-rec' }, t('cap.rec_title')),
    h('p', { class: 'hint' }, t('cap.rec_hint')),
    rows,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', id: 'cap-rec-add', onclick: () => row('', '') }, t('cap.rec_add')),
      h('button', { type: 'submit', id: 'cap-rec-save' }, t('cap.rec_save'))), status);
}

/**
 * capFeeds shows how the polls of the configured CAP feeds went, refreshed
 * every 15 s: a feed that stopped answering is a warning service nobody
 * hears from any more. The section stays hidden when this controller
 * polls none.
 */
async function capFeeds() {
  const section = h('section', { class: 'panel', id: 'cap-feeds', 'aria-labelledby': 'h-cap-feeds', hidden: true });
  const line = (f) => {
    if (f.failures > 0) {
      return t('cap.feed_failing', { n: f.failures, time: fmtDateTime(f.last_error_at), error: f.last_error }) + ' ' +
        (f.last_ok ? t('cap.feed_last_ok', { time: fmtDateTime(f.last_ok) }) : t('cap.feed_never_ok'));
    }
    return f.last_ok ? t('cap.feed_ok', { time: fmtDateTime(f.last_ok) }) : t('cap.feed_not_yet');
  };
  const show = (feeds) => {
    section.hidden = !feeds || feeds.length === 0;
    if (section.hidden) { fill(section); return; }
    fill(section, h('h2', { id: 'h-cap-feeds' }, t('cap.feeds_title')),
      h('ul', {}, feeds.map((f) => h('li', { 'data-failures': String(f.failures), class: f.failures > 0 ? 'error' : '' },
        h('strong', {}, f.feed), ' — ', line(f)))));
  };
  const load = async () => (await api('GET', '/cap/feeds')).feeds;
  show(await load().catch(() => null));
  const timer = setInterval(async () => {
    try { show(await load()); } catch (err) { /* the next refresh tries again */ }
  }, CAP_REFRESH_MS);
  return { section, stop: () => clearInterval(timer) };
}

/** within reports whether area lies in (or is) root. */
function within(ctx, area, root) { return ctx.within(area, root); }

/**
 * suspendedText says what a suspended cluster waits for, where "Tạm dừng"
 * alone would read as "resumes shortly": its message to download again,
 * or its sound device ('' for the others).
 */
function suspendedText(n) {
  if (n.state !== 'suspended') return '';
  if (n.reason === 'content-missing') return t('emergency.suspended_content');
  if (n.reason === 'audio-device') return t('emergency.suspended_device');
  return '';
}

// SILENCING are the faults (docs/fleet-health.md) with which a cluster
// cannot sound at all: no sound device, the speaker line cut or shorted,
// the amplifier's fault output on. Others (a relay that disagrees, a low
// battery, a weak signal) may still let it sound.
const SILENCING = ['no-sound-device', 'speaker-line-open', 'speaker-line-short', 'amplifier-fault'];

/** silencing returns the kinds of a node's open faults that keep it silent. */
function silencing(node) {
  return (node.status.faults || []).map((f) => f.kind).filter((k) => SILENCING.includes(k));
}

// DEAF are the faults (docs/fleet-health.md) with which a cluster does not
// take the alert at all: it does not trust the controller's signing key
// (key-untrusted), so it refuses every command and alert, and stays
// "not reached" with nothing to say why. Not among SILENCING: it never
// plays, so no play of it is made into a fault (the report's silenced);
// it is said apart, for as long as the cluster has not had the alert.
const DEAF = ['key-untrusted'];

/** deaf reports whether a node has an open fault with which it refuses the alert. */
function deaf(node) {
  return (node.status.faults || []).some((f) => DEAF.includes(f.kind));
}

// MUTE_LISTED is how many silent clusters the confirmation names; a
// province's alert may find hundreds, and the board lists every one.
const MUTE_LISTED = 10;

/**
 * STANDING_WAIT_MS is how long the send waits for the list of kept
 * content before its confirmation says the clusters must download the
 * message (it is read as the form opens: 133 ms for a province of 10,000).
 */
const STANDING_WAIT_MS = 2000;

/**
 * NODES_WAIT_MS is how long after the send the confirmation waits for the
 * cluster list read again (the wait for kept content runs within it) before its confirmation counts from the list read as the form
 * opened, and says so (GET /nodes for a province of 10,000 took 148 ms at
 * p50 and 1.5 s at p99 during a burst of reports).
 */
const NODES_WAIT_MS = 3000;

// 'unconfirmed' (began, then no word of the end long after it) shows only
// when there are such clusters.
const BOARD = ['reached', 'sounding', 'suspended', 'completed', 'failed', 'unconfirmed', 'offline', 'pending', 'cancelled'];

/**
 * areaBoard shows the report's count of the clusters of each area (its
 * by_area), worst first (most clusters not reached yet), so that an officer who warned a
 * district or the province sees at once which communes have not heard
 * it. It shows only when the clusters lie in more than one area. An
 * area's name shows its clusters in the table below (choose).
 *
 * The stream brings new counts several times a second while the alert
 * spreads: each row is kept and only its numbers change, and the rows
 * move only when the order does, so that an officer's tap on a name is
 * never lost to a row drawn anew under the finger.
 */
function areaBoard(areaName, choose) {
  const section = h('section', { class: 'panel', id: 'em-areas', 'aria-labelledby': 'h-em-areas', hidden: true });
  // What is wrong comes first, the columns a phone shows without scrolling
  // the table: not reached (targeted less reached, what the rows are
  // ordered by), of those how many are offline, and how many failed to
  // sound. The counts of the alert going well follow.
  const cols = ['not_reached', 'offline', 'failed', 'targeted', 'reached', 'sounding', 'completed', 'pending'];
  const heading = { targeted: 'emergency.targeted', not_reached: 'emergency.not_reached' };
  const tbody = h('tbody');
  fill(section, h('h2', { id: 'h-em-areas' }, t('emergency.by_area')),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, t('common.area')),
        cols.map((k) => h('th', { class: 'num' }, t(heading[k] || 'ack.' + k))))),
      tbody)));
  const rows = new Map(); // area → { tr, cells: { column → td } }
  const show = (byArea) => {
    const areas = Object.entries(byArea || {});
    section.hidden = areas.length < 2;
    if (section.hidden) return;
    const sorted = areas.map(([area, s]) => ({ area, ...s, not_reached: s.targeted - s.reached })).sort((a, b) => b.not_reached - a.not_reached ||
      areaName(a.area).localeCompare(areaName(b.area), 'vi'));
    for (const r of sorted) {
      let e = rows.get(r.area);
      if (!e) {
        const cells = Object.fromEntries(cols.map((k) => [k, h('td', { class: k === 'targeted' ? 'num' : `num s-${k.replace('_', '-')}` })]));
        e = { tr: h('tr', { dataset: { area: r.area } },
          h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => choose(r.area) }, areaName(r.area))),
          cols.map((k) => cells[k])), cells };
        rows.set(r.area, e);
      }
      e.tr.dataset.targeted = String(r.targeted);
      e.tr.dataset.reached = String(r.reached);
      for (const k of cols) {
        const text = fmtNumber(r[k] || 0);
        if (e.cells[k].textContent !== text) e.cells[k].textContent = text;
      }
    }
    for (const [area, e] of rows) if (!(area in byArea)) { e.tr.remove(); rows.delete(area); }
    const order = sorted.map((r) => rows.get(r.area).tr);
    if (order.some((tr, i) => tbody.children[i] !== tr)) tbody.append(...order);
  };
  return { section, show };
}

/**
 * showTiming says how fast the alert reached the speakers, from the
 * clusters' own reports: after a drill, whether the area had it within the
 * lead and began together.
 */
function showTiming(el, tm) {
  if (!tm || !tm.received_ms) { fill(el); return; }
  const ms = (v) => fmtNumber(v);
  fill(el,
    h('li', { id: 'em-timing-received' }, t('emergency.timing_received', { n: fmtNumber(tm.received), p50: ms(tm.received_ms.p50), p99: ms(tm.received_ms.p99) })),
    tm.sound_ms ? h('li', { id: 'em-timing-sound' }, t('emergency.timing_sound', {
      n: fmtNumber(tm.started), p50: ms(tm.sound_ms.p50), p99: ms(tm.sound_ms.p99), skew: ms(tm.skew_ms.p99) })) : null,
    tm.off_start > 0 ? h('li', { id: 'em-timing-off' }, t('emergency.timing_off', { n: fmtNumber(tm.off_start) })) : null,
    tm.chime_skipped > 0 ? h('li', { id: 'em-timing-chime-skipped' }, t('emergency.timing_chime_skipped', { n: fmtNumber(tm.chime_skipped) })) : null,
    tm.message_late > 0 ? h('li', { id: 'em-timing-message' }, t('emergency.timing_message', {
      n: fmtNumber(tm.message_late), in_step: fmtNumber(tm.message_in_step || 0), off: fmtNumber(tm.message_late - (tm.message_in_step || 0)) })) : null);
}

/**
 * ONE_AREA_FROM is the size of board that opens on one area's clusters:
 * a table of a province's 10,000 is slow to build on a phone, and the
 * officer first needs the commune that has not heard the alert.
 */
const ONE_AREA_FROM = 1000;

/** ROW_SLICE is how many of the board's rows are built at a time. */
const ROW_SLICE = 500;

/** MAX_TIMER_MS is the longest delay setTimeout keeps (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** OPEN_ALARMS_READ is the most alarms GET /alarms gives at once. */
const OPEN_ALARMS_READ = 10000;

/**
 * openAlarms reads the open alarms that keep a cluster silent or deaf to
 * the alert, or null where they cannot be read. Those alone: on a
 * typhoon's day the newest 10,000 open alarms of every kind were all
 * offline and mains off, the line cut before them was left out, and its
 * cluster read as heard.
 */
const openAlarms = () => api('GET', '/alarms', undefined, { state: 'open', kind: [...SILENCING, ...DEAF].join(','), limit: OPEN_ALARMS_READ })
  .then((r) => r.alarms || [], () => null);

async function board(ctx, main, id) {
  // The open alarms say which clusters have a fault that keeps them
  // silent: such a cluster may report "sounding" while its pole says
  // nothing, and the officer must warn that place by other means. Read
  // with the report, then followed on the alarm stream while the board is
  // open: a line cut during the alert shows without opening it again.
  // Without them the board shows the reports alone. The stream is
  // subscribed first and the alarms read once it is connected (or has
  // failed, or after 3 s), so that no change falls between the two and one
  // read is enough (the board read them with the report and again as the
  // stream connected). Changes that come before the board is drawn are
  // noted after the read, in order.
  const alarms = new EventSource(apiURL('/alarms/stream'));
  const early = [];
  let onAlarm = (a) => early.push(a);
  let resynced = false;
  let onResync = () => { resynced = true; };
  let alarmEvents = 0;
  alarms.addEventListener('alarm', (e) => {
    main.dataset.alarmEvents = String(++alarmEvents); // how many came live (tests read it)
    onAlarm(JSON.parse(e.data));
  });
  alarms.addEventListener('resync', () => onResync());
  const subscribed = new Promise((resolve) => {
    const done = () => { clearTimeout(timeout); resolve(); };
    const timeout = setTimeout(done, 3000);
    alarms.addEventListener('open', done, { once: true });
    alarms.addEventListener('error', done, { once: true });
  });
  let readSubscribed = false; // the read was sent with the stream connected
  let rep, open;
  try {
    [rep, open] = await Promise.all([api('GET', `/emergency/${encodeURIComponent(id)}`),
      subscribed.then(() => { readSubscribed = alarms.readyState === EventSource.OPEN; return openAlarms(); })]);
  } catch (err) {
    alarms.close();
    throw err;
  }
  // The silencing alarms open, by id; a node's kinds are drawn from them.
  const silencers = new Map();
  const mute = new Map();
  const muteOf = (node) => {
    const kinds = [...silencers.values()].filter((a) => a.node === node).map((a) => a.kind);
    if (kinds.length) mute.set(node, kinds); else mute.delete(node);
  };
  // The open alarms that make a cluster refuse the alert (alarm id →
  // node), and how many each such cluster has: looked up for every row of
  // a province's board, not searched.
  const refusers = new Map();
  const refusing = new Map();
  const refuses = (node) => refusing.has(node);
  const noteRefuser = (a) => {
    const had = refusers.get(a.id);
    if (had !== undefined) {
      refusers.delete(a.id);
      if (refusing.get(had) > 1) refusing.set(had, refusing.get(had) - 1); else refusing.delete(had);
    }
    if (a.end || !DEAF.includes(a.kind)) return;
    refusers.set(a.id, a.node);
    refusing.set(a.node, (refusing.get(a.node) || 0) + 1);
  };
  const noteAlarm = (a) => {
    if (a.end || !SILENCING.includes(a.kind)) silencers.delete(a.id); else silencers.set(a.id, a);
    noteRefuser(a);
    muteOf(a.node);
  };
  for (const a of [...(open || []), ...early]) noteAlarm(a);
  // The faults that keep a cluster silent while it plays the alert: those
  // the report names (silenced_by, for one that began it: kept once it has
  // played, so that a completed row does not read as heard), and for one
  // sounding, its open alarms as they come.
  const muteKinds = (n) => {
    const kinds = new Set(n.silenced_by || []);
    if (n.state === 'started') for (const k of mute.get(n.node) || []) kinds.add(k);
    return kinds.size ? [...kinds].sort() : null;
  };
  // A cluster that refuses the alert, while it has not had it (one that
  // had it took it before its key went wrong).
  const deafTo = (n) => n.received_ms === undefined && n.state !== 'cancelled' && refuses(n.node);
  // The counts are the board's status: read out, politely, as they change;
  // the table below them is not.
  const counts = h('div', { class: 'stats', id: 'ack-counts', role: 'status', 'aria-live': 'polite' });
  // Clusters that have the alert but not its audio yet are downloading it:
  // said, or "reached" and not "sounding" would read as a fault.
  const fetching = h('p', { class: 'hint', id: 'em-fetching', 'aria-live': 'polite', hidden: true });
  // Clusters of its areas waiting for their enrolment code: not put up
  // yet, so not targeted; said apart, or they would be taken for dead.
  const awaiting = h('p', { class: 'hint', id: 'em-awaiting', hidden: true });
  // Clusters that report sounding with a fault that silences them, counted;
  // and apart, those that played it (to the end, or cut off) with one.
  const silent = h('p', { class: 'error-box', id: 'em-silent', hidden: true });
  const silenced = h('p', { class: 'error-box', id: 'em-silenced', hidden: true });
  // Clusters that have not had it and refuse it (key-untrusted): they
  // never will, whatever the resends.
  const deafCount = h('p', { class: 'error-box', id: 'em-deaf', hidden: true });
  // A read that came back full may have left out older faults: said, so
  // that an unmarked row is not taken for one that is heard.
  const partial = h('p', { class: 'hint', id: 'em-silent-partial', hidden: true });
  const notePartial = (list) => {
    partial.hidden = !list || list.length < OPEN_ALARMS_READ;
    fill(partial, partial.hidden ? '' : t('emergency.silent_partial', { n: fmtNumber(OPEN_ALARMS_READ) }));
  };
  notePartial(open);
  // Kept as sets, so that a province's burst of reports counts each
  // cluster once rather than all of them again.
  const silentNodes = new Set();
  const silencedNodes = new Set();
  const deafNodes = new Set();
  const showSilent = (changed) => {
    for (const n of changed) {
      const kinds = muteKinds(n);
      if (kinds && n.state === 'started') silentNodes.add(n.node); else silentNodes.delete(n.node);
      if (kinds && n.state !== 'started') silencedNodes.add(n.node); else silencedNodes.delete(n.node);
      if (deafTo(n)) deafNodes.add(n.node); else deafNodes.delete(n.node);
    }
    deafCount.hidden = deafNodes.size === 0;
    fill(deafCount, deafNodes.size > 0 ? t('emergency.deaf_count', { n: fmtNumber(deafNodes.size) }) : '');
    const k = silentNodes.size;
    silent.hidden = k === 0;
    fill(silent, k > 0 ? t('emergency.sounding_silent', { n: fmtNumber(k) }) : '');
    const p = silencedNodes.size;
    silenced.hidden = p === 0;
    fill(silenced, p > 0 ? t('emergency.played_silent', { n: fmtNumber(p) }) : '');
  };
  // Every cluster's latest report, in the report's order; rows only for
  // those the table shows.
  const nodes = new Map();
  const rows = new Map();
  const tbody = h('tbody');
  // The officer's own tree and the areas above it are in ctx; the other
  // communes an emergency reached are named by the report.
  const areaName = (id) => {
    const known = ctx.areaName(id);
    return known !== id ? known : ((rep.area_names || {})[id] || id);
  };
  // Which area's clusters the table shows: an officer who warned a
  // district looks at one commune at a time. A large board opens on the
  // area with the most clusters not reached, the first of the by-area
  // table.
  const areaIDs = [...new Set(rep.nodes.map((n) => n.area))].sort((a, b) => areaName(a).localeCompare(areaName(b), 'vi'));
  const notReached = (a) => { const s = (rep.by_area || {})[a] || {}; return (s.targeted || 0) - (s.reached || 0); };
  let only = rep.nodes.length >= ONE_AREA_FROM && areaIDs.length > 1 ?
    areaIDs.reduce((best, a) => (notReached(a) > notReached(best) ? a : best)) : '';
  const shown = (n) => only === '' || n.area === only;
  const pick = h('select', { id: 'em-area-filter', onchange: () => { only = pick.value; drawRows(); } },
    options([['', t('emergency.filter_all', { n: fmtNumber(rep.nodes.length) })], ...areaIDs.map((a) => [a, areaName(a)])], only));
  const tableTop = h('h2', { id: 'h-em-nodes' }, t('emergency.per_node'));
  const areas = areaBoard(areaName, (a) => {
    pick.value = only = a;
    drawRows();
    tableTop.scrollIntoView({ block: 'start' });
  });
  const state = h('span', { id: 'em-state' });
  const timing = h('ul', { class: 'hint', id: 'em-timing' });
  // Areas whose publish the broker did not take when the alert was sent:
  // the controller sends it to their clusters one by one as they can be
  // reached. Said until every cluster has it, with what to do meanwhile.
  const unsent = (rep.areas || []).filter((a) => a.error && !a.published_at).map((a) => areaName(a.area));
  const unpublished = h('div', { class: 'error-box', role: 'alert', id: 'em-unpublished', hidden: true },
    t('emergency.unpublished', { areas: unsent.join(', '), expires: fmtDateTime(rep.expires) }));
  // Cut off by a controller stop while it was sent: not sent again nor
  // followed, but clusters may sound it until its expiry (docs/emergency.md).
  const cutOff = h('div', { class: 'error-box', role: 'alert', id: 'em-cut-off', hidden: true },
    t('emergency.cut_off', { expires: fmtDateTime(rep.expires) }));
  const showSummary = (s, st, tm, byArea) => {
    cutOff.hidden = !rep.cut_off || st !== 'active';
    unpublished.hidden = unsent.length === 0 || st !== 'active' || (s.reached || 0) >= (s.targeted || 0);
    fill(counts, h('div', { class: 'panel' }, h('div', { class: 'stat' }, fmtNumber(s.targeted)), t('emergency.targeted')),
      BOARD.filter((k) => k !== 'unconfirmed' || s[k] > 0).map((k) => h('div', { class: 'panel', dataset: { count: k } }, h('div', { class: `stat s-${k}` }, fmtNumber(s[k] || 0)), t('ack.' + k))));
    fill(state, badge(st, 'emstate.'));
    fetching.hidden = !(s.fetching > 0);
    fill(fetching, s.fetching > 0 ? t('emergency.fetching', { n: fmtNumber(s.fetching) }) : '');
    awaiting.hidden = !(s.awaiting_enrolment > 0);
    fill(awaiting, s.awaiting_enrolment > 0 ? t('emergency.awaiting_enrolment', { n: fmtNumber(s.awaiting_enrolment) }) : '');
    showTiming(timing, tm);
    areas.show(byArea);
  };
  // The clusters by name (read below, once the rows are drawn by id).
  const clusters = { names: new Map(), read: false };
  const row = (n, kinds = muteKinds(n), refused = deafTo(n)) => h('tr', { dataset: { node: n.node, state: n.state, area: n.area, ...(kinds ? { silent: 'true' } : {}), ...(refused ? { deaf: 'true' } : {}) } },
    h('td', {}, clusterLink(n.node, clusters.names)),
    h('td', {}, areaName(n.area)),
    h('td', {}, badge(n.state, 'ack.'), kinds ? h('span', { class: 'silent-fault' },
      ' — ', t('emergency.row_silent', { faults: kinds.map((k) => t('alarm.' + k)).join(', ') })) : '',
    refused ? h('span', { class: 'silent-fault deaf-fault' }, ' — ', t('emergency.row_deaf')) : ''),
    h('td', { class: 'num', dataset: { label: t('emergency.received_after') } }, n.received_ms !== undefined ? `${fmtNumber(n.received_ms)} ms` : '—'),
    h('td', {}, suspendedText(n) || reasonText(n.reason), n.fetched ? h('span', { class: 'fetched' }, (n.reason ? ' · ' : '') + t('emergency.fetched', { ms: fmtNumber(n.content_ready_ms) })) :
      // Begun with its chime, the message still downloading.
      n.state === 'started' && !n.content_ready ? h('span', { class: 'fetching' }, t('emergency.chime_only')) : '',
      // When a message that came after the chime began: with the others or not.
      n.message_ms !== undefined && n.message_in_step !== undefined ? h('span', { class: n.message_in_step ? 'in-step' : 'off-step' },
        ' · ' + t(n.message_in_step ? 'emergency.message_in_step' : 'emergency.message_off_step', { s: fmtNumber(n.message_ms / 1000, 1) })) : '',
      // Began late, and caught up by leaving out the chime's beginning.
      n.chime_skipped_ms > 0 ? h('span', { class: 'in-step chime-skipped' }, ' · ' + t('emergency.chime_skipped', { ms: fmtNumber(n.chime_skipped_ms) })) : ''));
  // The table is built a slice of rows at a time, so that its first rows
  // show at once and the page answers while the rest are built (a phone
  // takes seconds for a province's 10,000). The rest go into the table
  // together at the end: a table laid out again after every slice costs
  // the square of its rows. A newer drawing stops an older one; a cluster
  // the stream changes meanwhile is drawn by showNode.
  let drawing = 0;
  // The area column says nothing when the table shows one area: left out,
  // so that a phone shows the detail without scrolling the table.
  const oneArea = () => tbody.closest('table')?.classList.toggle('one-area', areaIDs.length <= 1 || only !== '');
  const drawRows = () => {
    const gen = ++drawing;
    oneArea();
    rows.clear();
    tbody.replaceChildren();
    const ids = [...nodes.values()].filter(shown).map((n) => n.node);
    const rest = document.createDocumentFragment();
    let i = 0;
    const slice = () => {
      if (gen !== drawing) return;
      const first = i === 0;
      const part = first ? document.createDocumentFragment() : rest;
      for (const end = Math.min(i + ROW_SLICE, ids.length); i < end; i++) {
        const n = nodes.get(ids[i]);
        if (rows.has(n.node) || !shown(n)) continue;
        const tr = row(n);
        rows.set(n.node, tr);
        part.append(tr);
      }
      if (first) tbody.append(part);
      if (i < ids.length) setTimeout(slice, 0);
      else if (!first) tbody.append(rest);
    };
    slice();
  };
  const showNode = (n) => {
    nodes.set(n.node, n);
    showSilent([n]);
    const had = rows.get(n.node);
    if (!shown(n)) {
      if (had) { had.remove(); rows.delete(n.node); }
      return;
    }
    const tr = row(n);
    if (had) had.replaceWith(tr); else tbody.append(tr);
    rows.set(n.node, tr);
  };
  showSummary(rep.summary, rep.state, rep.timing, rep.by_area);
  for (const n of rep.nodes) nodes.set(n.node, n);
  drawRows();
  // The clusters by name, as the cluster list shows them: read after the
  // rows are drawn by id, so that the board shows at once, and put into
  // the rows drawn meanwhile (those drawn after take them from row). Of
  // the alert's own area when the officer's covers it: a commune's alert
  // reads that commune's clusters, not the province's.
  const namesArea = (rep.targets || []).length === 1 && ctx.covers(rep.targets) ? rep.targets[0] : ctx.defaultArea();
  clusterNames(rep.nodes.map((n) => n.node), clusters, namesArea).then(() => {
    for (const [node, tr] of rows) {
      const name = clusters.names.get(node);
      const a = tr.querySelector('td a');
      if (name && a) { a.textContent = name; a.title = node; }
    }
  });
  showSilent(rep.nodes);
  const live = h('p', { class: 'hint', id: 'em-live', 'aria-live': 'polite' }, t('emergency.live'));
  // A large area's clusters spread their reports over a window: say so, or
  // "not yet reported" would read as a fault while they trickle in.
  const windowMS = Math.max(0, ...(rep.areas || []).map((a) => a.report_window_ms || 0));
  const spread = windowMS > 0 ? h('p', { class: 'hint', id: 'em-report-window' },
    t('emergency.report_window', { s: fmtNumber(Math.ceil(windowMS / 1000)) })) : null;
  // The stream begins from the report just shown (its resume token), so it
  // sends only the clusters changed since: not a province's 10,000 again.
  // Reconnecting, the browser names the last burst it had (Last-Event-ID).
  const since = rep.resume ? `?since=${encodeURIComponent(rep.resume)}` : '';
  const src = new EventSource(apiURL(`/emergency/${encodeURIComponent(id)}/stream${since}`));
  // What came live, for tests and benchmarks: the bursts (each ends with a
  // summary), the cluster events, and when the first burst was shown.
  let bursts = 0, nodeEvents = 0;
  let expires = rep.expires;
  // over is the state the board has said the alert ended in (expired at
  // its expiry, stopped), '' while in force. A summary the controller
  // built before that moment may still be on its way (the report is
  // cached, and this page's clock may run a little ahead of the
  // controller's): one saying the alert is in force set the badge back to
  // "Đang hiệu lực" after the board had said it expired. Once over, such
  // a summary is old news and is left out.
  let over = '';
  src.addEventListener('summary', (e) => {
    const d = JSON.parse(e.data);
    main.dataset.streamBursts = String(++bursts);
    if (bursts === 1) main.dataset.streamFirstAt = String(Math.round(performance.now()));
    if (over && d.state === 'active') return;
    if (d.expires) expires = d.expires;
    showSummary(d.summary, d.state, d.timing, d.by_area);
    // Over on the controller's word (expired, or stopped by a colleague):
    // said at once, as at the expiry.
    if (d.state && d.state !== 'active' && !over) stopped(d.state);
  });
  src.addEventListener('node', (e) => {
    main.dataset.streamNodes = String(++nodeEvents);
    // A stream whose resume point the controller forgot begins with every
    // cluster, as the report just shown has them: only a changed one is
    // drawn again (10,000 rows at a province's alert).
    const n = JSON.parse(e.data);
    const had = nodes.get(n.node);
    if (had && JSON.stringify(had) === JSON.stringify(n)) return;
    showNode(n);
  });
  // The stream ends when nothing in the report changes any more: every
  // cluster final, or the alert over. Final with the alert still in force
  // (until its expiry it can be stopped, and a pole put up meanwhile is
  // sent it) is no end of the alert: "Đã kết thúc" beside "Đang hiệu lực"
  // read as a contradiction.
  let ended = false;
  const sayEnded = (st) => {
    if (st !== 'active' || Date.parse(expires) <= now().getTime()) { fill(live, t('emergency.ended')); return; }
    const exp = new Date(expires);
    const until = ymd(exp) === ymd(now()) ? fmtTime(exp) : fmtDateTime(exp);
    const played = [...nodes.values()].every((n) => n.state === 'completed');
    fill(live, t(played ? 'emergency.played_in_force' : 'emergency.final_in_force', { time: until }));
  };
  src.addEventListener('end', (e) => {
    src.close();
    ended = true;
    let st = 'active';
    try { st = JSON.parse(e.data).state || st; } catch { /* said as in force, as the board's state is */ }
    sayEnded(over || st);
  });
  src.onerror = () => fill(live, t('emergency.reconnecting'));

  // The alarm stream: a cluster's silencing fault opening or ending
  // redraws its row and the count above the table.
  const redraw = (node) => { const n = nodes.get(node); if (n) showNode(n); };
  onAlarm = (a) => {
    noteAlarm(a);
    redraw(a.node);
  };
  // A reconnection may have missed changes (while a proxy cut it; or the
  // first connection, when the read above did not wait for it), and a
  // stream that fell behind says so (resync): read the open alarms again,
  // one read at a time, and once more after it when asked meanwhile.
  let reading = null;
  let again = false;
  let rereads = 0;
  const reread = () => {
    if (reading) { again = true; return; }
    reading = openAlarms().then((list) => {
      reading = null;
      if (again) { again = false; reread(); }
      if (!list) return;
      const before = new Set([...mute.keys(), ...refusing.keys()]);
      silencers.clear();
      refusers.clear();
      refusing.clear();
      mute.clear();
      for (const a of list) noteAlarm(a);
      notePartial(list);
      for (const node of new Set([...before, ...mute.keys(), ...refusing.keys()])) redraw(node);
      main.dataset.alarmRereads = String(++rereads); // how many reads were applied (tests read it)
    });
  };
  alarms.addEventListener('open', reread);
  onResync = reread;
  // Connected only after the read was sent, or fallen behind since: the
  // read may have missed changes.
  if (resynced || (!readSubscribed && alarms.readyState === EventSource.OPEN)) reread();

  const stopped = (st) => {
    over = st;
    clearTimeout(expiryTimer);
    fill(state, badge(st, 'emstate.'));
    main.querySelector('#em-cancel')?.remove();
    // No longer in force: over, the figures final once the stream has
    // ended. Until then (a minute past the expiry, for the clusters'
    // late reports) the live line said it followed live, beside "Đã hết
    // hạn": it says the alert has ended and late reports still come in.
    if (ended) sayEnded(st);
    else fill(live, t('emergency.ended_late_reports'));
  };
  // At its expiry the alert is over: a board left open past it said
  // "Đang hiệu lực" and offered DỪNG PHÁT until opened again, its stream
  // having ended when every cluster was final (and otherwise until a
  // minute after). Read again then, for a stop by a colleague meanwhile;
  // the controller reading it a moment before its own clock reaches the
  // expiry, or not answering, it is expired all the same.
  let expiryTimer;
  let left = false; // the board closed: a read still on its way changes nothing
  const atExpiry = async () => {
    const ms = Date.parse(expires) - now().getTime();
    // A timer longer than setTimeout's ~24.8 days fires at once: armed
    // again until the expiry is near.
    if (ms > 0) { expiryTimer = setTimeout(atExpiry, Math.min(ms, MAX_TIMER_MS)); return; }
    let st = 'expired';
    try {
      const r = await api('GET', `/emergency/${encodeURIComponent(id)}`);
      if (r.state && r.state !== 'active') st = r.state;
    } catch {
      // Said expired: its expiry has passed on the controller's clock.
    }
    if (!left) stopped(st);
  };
  if (rep.state === 'active') atExpiry();
  // more, if given, adds to the confirmation what the officer chose (the
  // all-clear's volume), read when the button is pressed.
  const act = (verb, title, yes, body, more) => async () => {
    if (!(await confirmDialog(title, h('div', {}, h('p', {}, rep.title || rep.id), more ? more() : null), yes, true))) return;
    try {
      const r = await api('POST', `/emergency/${encodeURIComponent(id)}/${verb}`, body ? body() : undefined);
      toast(t('emergency.done_' + verb));
      // Stopped: said at once, and not offered again. The stream may have
      // ended already (every cluster had played it to the end), and then
      // no summary would come to change the state.
      if (verb === 'cancel') stopped((r && r.state) || 'cancelled');
      if (verb === 'all-clear' && r && r.id) location.hash = `#/emergency/${encodeURIComponent(r.id)}`;
    } catch (err) {
      const kept = keptEmergency(err); // an all-clear kept, not published
      if (kept && kept.id !== id) { location.hash = `#/emergency/${encodeURIComponent(kept.id)}`; return; }
      // A refusal said wholly in the user's words keeps the API's own
      // sentence (which all-clear, which area) as its tooltip.
      toast(errorText(err), true, errorTitle(err));
      // Stopped already (by a colleague, from another page) or expired:
      // the board says so now, as the refusal does.
      if (verb === 'cancel' && err.reason === 'emergency_stopped') stopped('cancelled');
      if (verb === 'cancel' && err.reason === 'emergency_expired') stopped('expired');
    }
  };
  const clearText = h('input', { id: 'em-clear-text', value: t('emergency.all_clear_text') });
  // The all-clear sounds as loud as the alert it clears unless the officer
  // chooses otherwise: the API's default is full volume, which after a
  // quiet drill would blare.
  const clearVolume = h('select', { id: 'em-clear-volume' }, volumeOptions(rep.volume || FULL_VOLUME));
  // Only an officer over every area the alert went to may stop it or send
  // its all-clear (the API refuses the others); a commune's officer looking
  // at the district's alert is told who can.
  const ours = ctx.covers(rep.targets || []);
  // The alert an all-clear follows, and the all-clear of an alert, by
  // their titles (from the recent list: the API reads no set of ids, and
  // the other's full report may hold a province's clusters); by id where
  // the list does not hold it.
  const titles = new Map();
  if (rep.follows || rep.all_clear) {
    try {
      for (const e of (await api('GET', '/emergency', undefined, { limit: 100 })).emergencies || []) if (e.title) titles.set(e.id, e.title);
    } catch {
      // Linked by id.
    }
  }
  const emLink = (other) => h('a', { href: `#/emergency/${encodeURIComponent(other)}`, title: titles.has(other) ? other : null }, titles.get(other) || other);
  if (rep.drill) main.classList.add('drill');
  fill(main,
    rep.drill ? h('div', { class: 'drill-banner', id: 'em-drill-banner' }, t('emergency.drill_banner')) : null,
    h('p', { class: 'no-print' }, h('a', { href: '#/emergency' }, '← ', t('nav.emergency'))),
    h('h1', { class: 'emergency-title' }, rep.kind === 'all-clear' ? t('emergency.all_clear_title') : t('emergency.board_title'), ': ', rep.title || rep.id),
    h('p', {}, state, ' · ', fmtDateTime(rep.issued), ' · ', (rep.targets || []).map((a) => ctx.areaName(a)).join(', ')),
    unpublished, cutOff, counts, silent, silenced, deafCount, partial, fetching, awaiting, timing, live, spread,
    rep.follows ? h('p', { id: 'em-follows' }, t('emergency.follows'), ' “', emLink(rep.follows), '”') : null,
    rep.all_clear ? h('p', { id: 'em-cleared-by' }, t('emergency.cleared_by'), ' “', emLink(rep.all_clear), '”') : null,
    ctx.may('emergency') && !ours ? h('p', { class: 'panel muted no-print', id: 'em-higher-up' }, t('emergency.higher_up')) : null,
    ctx.may('emergency') && ours ? h('div', { class: 'panel row no-print' },
      rep.state === 'active' ? h('button', { type: 'button', class: 'danger', id: 'em-cancel', onclick: act('cancel', t('emergency.cancel_title'), t('emergency.cancel')) }, t('emergency.cancel')) : null,
      rep.kind !== 'all-clear' && !rep.all_clear ? h('span', { class: 'row' }, field(t('emergency.all_clear_label'), clearText),
        field(t('clusters.volume'), clearVolume, t('emergency.all_clear_volume_hint')),
        h('button', { type: 'button', id: 'em-all-clear', onclick: act('all-clear', t('emergency.all_clear_confirm'), t('emergency.all_clear'), () => ({ text: clearText.value.trim(), volume: Number(clearVolume.value) }),
          () => h('p', { class: 'stat', id: 'em-clear-confirm-volume' }, clearSounds(Number(clearVolume.value)))) }, t('emergency.all_clear'))) : null) : null,
    areas.section,
    h('section', { class: 'panel' }, tableTop,
      areaIDs.length > 1 ? field(t('emergency.filter_area'), pick) : null, h('div', { class: 'table-wrap' }, h('table', { id: 'ack-board', class: 'cards' },
      h('thead', {}, h('tr', {}, [t('clusters.name'), t('common.area'), t('clusters.state'), t('emergency.received_after'), t('clusters.detail')].map((x) => h('th', {}, x)))), tbody))),
    rep.drill ? h('div', { class: 'drill-banner' }, t('emergency.drill_banner')) : null);
  oneArea();
  return () => { left = true; clearTimeout(expiryTimer); src.close(); alarms.close(); main.classList.remove('drill'); };
}
