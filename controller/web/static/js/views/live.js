// Phát trực tiếp: the officer speaks to areas through the browser's
// microphone. getUserMedia → an AudioWorklet at 16 kHz → 20 ms frames of
// 16-bit PCM → the GET /api/v1/live WebSocket (docs/live.md). The page
// shows a level meter and whether the call is on air, and on how many of
// its clusters an emergency alert cut it off (all of them: nobody hears
// it, and it offers to end the call); a call can be a
// drill (diễn tập), striped purple like an emergency drill. Below, the
// calls on air in the officer's areas, polled every few seconds with one
// request for all of them (each with its summary), each with a button to
// cut it.

import { api } from '../api.js';
import { t, has } from '../i18n.js';
import { h, fill, field, options, errorBox, errorText, toast, confirmDialog, fmtTime, fmtDuration, fmtNumber, refreshMs } from '../ui.js';

const RATE = 16000;
const FRAME = RATE / 50; // 20 ms
const REFRESH_MS = refreshMs(3000);

/**
 * endReason words why a call ended (the controller's reason, then its
 * detail: docs/live.md, "Ending"), or is empty when the speaker ended it
 * or it was cut, which the state line says with who cut it.
 */
function endReason(st) {
  const reason = st.reason || '';
  if (reason === '' || reason === 'speaker stopped' || reason === 'cut') return '';
  const key = 'live.reason.' + reason.replace(/ /g, '_');
  const words = has(key) ? t(key) : t('live.reason.other', { reason });
  return st.detail ? `${words} (${st.detail})` : words;
}

/**
 * heldWords words, for each alert that held a call back on some clusters
 * (the summary's held_by, or the speaker's status' held), how many wait
 * for it to finish, joined the call after it, or missed it. The alert is
 * named by its title (a drill's carries its mark), its id beside it:
 * officers know "Bão số 3", not e000012.
 */
function heldWords(held) {
  return (held || []).map((x) => {
    const alert = x.title ? `“${x.title}” (${x.alert})` : x.alert;
    return [
      x.waiting ? t('live.held_waiting', { n: fmtNumber(x.waiting), alert }) : '',
      x.joined ? t('live.held_joined', { n: fmtNumber(x.joined), alert }) : '',
      x.missed ? t('live.held_missed', { n: fmtNumber(x.missed), alert }) : '',
    ].filter(Boolean).join(' ');
  }).filter(Boolean);
}

/**
 * preemptedBox says on how many of the call's clusters an emergency alert
 * (or another higher level) cut the call off (the status' preempted, of
 * its nodes), or is null while it cut none. Cut off on every one, the call
 * is heard nowhere: it says so, and offers stop. An older controller's
 * status without nodes is said as the count alone.
 */
function preemptedBox(st, stop) {
  const n = st.preempted || 0;
  const all = st.nodes || 0;
  if (n === 0) return null;
  const every = all > 0 && n >= all;
  const words = every ? t('live.preempted_all', { n: fmtNumber(n) }) : all > 0 ?
    t('live.preempted_some', { n: fmtNumber(n), all: fmtNumber(all), rest: fmtNumber(all - n) }) : t('live.preempted_n', { n: fmtNumber(n) });
  return h('div', { class: 'error-box', role: 'alert', id: 'live-preempted', dataset: { every: every ? 'true' : 'false' } },
    h('p', {}, words),
    every ? h('button', { type: 'button', class: 'danger', id: 'live-preempted-stop', onclick: stop }, t('live.preempted_stop')) : null);
}

export async function render(ctx, main) {
  const areaSel = h('select', { id: 'live-areas', multiple: true, size: 8 }, options(ctx.areaOptions(), ''));
  const prioOpts = [['priority', t('live.prio_priority')]];
  if (ctx.may('emergency')) prioOpts.push(['emergency', t('live.prio_emergency')]);
  const prioSel = h('select', { id: 'live-priority' }, options(prioOpts, 'priority'));
  const drill = h('input', { type: 'checkbox', id: 'live-drill' });
  const volume = h('select', { id: 'live-volume' }, options([['', t('live.volume_node')],
    ...Array.from({ length: 15 }, (_, i) => [String(15 - i), i === 0 ? t('emergency.full') : String(15 - i)])], ''));
  const banner = h('div', { class: 'drill-banner', hidden: true, id: 'live-drill-banner' }, t('live.drill_banner'));
  drill.addEventListener('change', () => {
    banner.hidden = !drill.checked;
    main.classList.toggle('drill', drill.checked);
    // A drill is quiet unless the officer chose a level.
    if (drill.checked && volume.value === '') volume.value = '3';
  });
  const state = h('p', { id: 'live-state', class: 'muted' }, t('live.off_air'));
  const bar = h('div', { id: 'live-level', style: 'height:100%;width:0;background:#2e7d32;transition:width 60ms' });
  const meter = h('div', { role: 'meter', 'aria-label': t('live.level'), style: 'height:14px;border:1px solid #999;max-width:24rem' }, bar);
  const msg = h('div');
  const startBtn = h('button', { type: 'submit', id: 'live-start' }, t('live.start'));
  const stopBtn = h('button', { type: 'button', id: 'live-stop', disabled: true, class: 'danger' }, t('live.stop'));
  let call = null;

  const stop = () => {
    if (!call) return;
    const c = call;
    call = null;
    if (c.ws.readyState === WebSocket.OPEN) c.ws.send('{"type":"end"}');
    c.stream.getTracks().forEach((tr) => tr.stop());
    c.audio.close();
    bar.style.width = '0';
    // The offer to end a call no cluster plays goes with the call; what
    // the alert did stays said.
    const offer = msg.querySelector('#live-preempted-stop');
    if (offer) offer.remove();
    startBtn.disabled = false;
    stopBtn.disabled = true;
    drill.disabled = false;
  };
  stopBtn.onclick = stop;

  const start = async () => {
    fill(msg);
    const areas = [...areaSel.selectedOptions].map((o) => o.value);
    if (areas.length === 0) { fill(msg, errorBox(new Error(t('live.pick_area')))); return; }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    } catch (err) {
      fill(msg, errorBox(new Error(t('live.no_mic', { err: err.message || String(err) }))));
      return;
    }
    const audio = new AudioContext({ sampleRate: RATE });
    await audio.audioWorklet.addModule('/static/js/live-worklet.js');
    const src = audio.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(audio, 'live-capture');
    src.connect(node);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams({ areas: areas.join(','), priority: prioSel.value });
    if (drill.checked) q.set('drill', '1');
    if (volume.value) q.set('volume', volume.value);
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/live?${q}`);
    ws.binaryType = 'arraybuffer';
    call = { ws, stream, audio };
    startBtn.disabled = true;
    stopBtn.disabled = false;
    drill.disabled = true;
    let pending = new Int16Array(0);
    node.port.onmessage = (e) => {
      const f = e.data;
      let sum = 0;
      const pcm = new Int16Array(f.length);
      for (let i = 0; i < f.length; i++) {
        const v = Math.max(-1, Math.min(1, f[i]));
        sum += v * v;
        pcm[i] = v < 0 ? v * 0x8000 : v * 0x7fff;
      }
      bar.style.width = Math.min(100, Math.sqrt(sum / f.length) * 300) + '%';
      const joined = new Int16Array(pending.length + pcm.length);
      joined.set(pending); joined.set(pcm, pending.length);
      pending = joined;
      while (pending.length >= FRAME) {
        if (ws.readyState === WebSocket.OPEN) ws.send(pending.slice(0, FRAME).buffer);
        pending = pending.slice(FRAME);
      }
    };
    // Whether the controller said the call ended (and why): a close
    // without it is the connection lost, or the call refused before it
    // began, and is said so.
    let opened = false;
    let ended = false;
    ws.onopen = () => { opened = true; };
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const st = JSON.parse(e.data);
      if (st.state === 'on_air') {
        state.className = 'badge bad';
        state.removeAttribute('title'); // the frames of a call before
        fill(state, st.drill ? t('live.on_air_drill') : t('live.on_air'));
        // Areas the call does not reach now; a later status without
        // them: every area is reached again.
        const failing = st.failing_areas || [];
        const boxes = [];
        if (failing.length) {
          const words = t('live.failing_areas', { areas: failing.join(', ') });
          boxes.push(h('div', { class: 'error-box', role: 'alert', id: 'live-failing' }, st.detail ? `${words} (${st.detail})` : words));
        }
        // Clusters an emergency alert on air holds the call back on, and
        // what became of them; a later status gives the whole list.
        const held = heldWords(st.held);
        if (held.length) boxes.push(h('div', { class: 'error-box', role: 'status', id: 'live-held' }, held.map((x) => h('p', {}, x))));
        // Clusters an alert cut the call off on, for good: the officer,
        // talking on, would not know. Cut off on every one, nobody hears
        // the call: the box says so and offers to end it.
        const cut = preemptedBox(st, stop);
        if (cut) boxes.push(cut);
        fill(msg, ...boxes);
        refresh();
      } else if (st.state === 'ended') {
        ended = true;
        state.className = 'muted';
        // How long it was on air, from the call's recorded times; the
        // frames sent (each 60 ms, protocol/nodeaudio) are a technician's
        // figure, kept as the tooltip.
        const aired = st.started && st.ended ? fmtDuration(Math.max(0, Date.parse(st.ended) - Date.parse(st.started))) : '';
        fill(state, !aired ? t('live.ended_plain') :
          st.cut_by ? t('live.ended_cut', { time: aired, user: st.cut_by }) : t('live.ended', { time: aired }));
        state.title = t('live.frames', { n: st.frames || 0 });
        const why = endReason(st);
        if (why) fill(msg, h('div', { class: 'error-box', role: 'alert', id: 'live-ended-why' }, why));
        refresh();
      }
    };
    ws.onclose = (e) => {
      if (call && call.ws === ws) stop();
      if (!ended && e.code !== 1000) {
        state.className = 'muted';
        fill(state, t('live.off_air'));
        fill(msg, h('div', { class: 'error-box', role: 'alert', id: 'live-ended-why' }, t(opened ? 'live.closed' : 'live.refused')));
      }
    };
  };

  // The calls on air that the officer may see, with who speaks, where,
  // since when, whether it is a drill and how many clusters play it.
  const onAir = h('div', { id: 'live-calls' });
  // As the server decides: the speaker, or a user with the right to make
  // the call on every one of its areas (the server checks again).
  const mine = (area) => { for (let a = area; a; a = (ctx.areaByID.get(a) || {}).parent) if (a === ctx.me.area) return true; return false; };
  const mayCut = (c) => c.created_by === ctx.me.username ||
    (ctx.may(c.priority === 'emergency' ? 'emergency' : 'schedule') && (!ctx.me.area || c.areas.every(mine)));
  const cut = (c) => async () => {
    const ok = await confirmDialog(t('live.cut_title'),
      h('div', { id: 'live-cut-confirm' },
        c.drill ? h('div', { class: 'drill-banner' }, t('live.drill_banner')) : null,
        h('p', {}, t('live.cut_body', { user: c.created_by, areas: c.areas.map((a) => ctx.areaName(a)).join(', ') })),
        c.title ? h('p', {}, c.title) : null),
      t('live.cut'), true);
    if (!ok) return;
    try {
      await api('POST', `/live/calls/${encodeURIComponent(c.id)}/cut`);
      toast(t('live.cut_done'));
    } catch (err) {
      toast(errorText(err), true);
    }
    refresh();
  };
  const load = async () => {
    // One request for every call on air, each with its summary.
    const { calls } = await api('GET', '/live/calls', undefined, { active: 'true', summary: 'true' });
    if (calls.length === 0) return h('p', { class: 'muted', id: 'live-calls-none' }, t('live.calls_none'));
    const head = [t('live.speaker'), t('live.areas'), t('live.since'), t('live.kind'), t('live.playing')];
    // On a phone each call is a card (app.css, table.cards): data-label
    // names each value there.
    const cell = (i, attrs, ...kids) => h('td', { ...attrs, dataset: { label: head[i] } }, ...kids);
    return h('div', { class: 'table-wrap' }, h('table', { class: 'cards' },
      h('thead', {}, h('tr', {}, [...head, ''].map((x) => h('th', {}, x)))),
      h('tbody', {}, calls.map((c) => {
        const s = c.summary;
        return h('tr', { dataset: { call: c.id, drill: c.drill ? 'true' : 'false' } },
          cell(0, { class: 'speaker' }, c.created_by),
          cell(1, {}, c.areas.map((a) => ctx.areaName(a)).join(', ')),
          cell(2, {}, fmtTime(c.started)),
          cell(3, { class: 'kind' }, c.drill ? h('strong', { class: 'badge drill' }, t('live.drill_short')) : t('live.real'),
            c.priority === 'emergency' ? ` · ${t('live.prio_emergency')}` : ''),
          cell(4, { class: 'num playing' }, s ? t('live.playing_n', { n: fmtNumber(s.sounding), all: fmtNumber(s.targeted) }) : '—',
            s ? heldWords(s.held_by).map((x) => h('div', { class: 'held' }, x)) : null),
          h('td', {}, mayCut(c) ? h('button', { type: 'button', class: 'danger cut', onclick: cut(c) }, t('live.cut')) : null));
      }))));
  };
  // Refreshes may overlap (the timer, a status, a cut): only the latest
  // one shows its list and sets the next timer.
  let timer = 0;
  let closed = false;
  let latest = 0;
  const refresh = async () => {
    const run = ++latest;
    clearTimeout(timer);
    let view;
    try { view = await load(); } catch (err) { view = errorBox(err); }
    if (run !== latest || closed) return;
    fill(onAir, view);
    timer = setTimeout(refresh, REFRESH_MS);
  };

  fill(main, banner, h('h1', {}, t('live.title')),
    h('form', { class: 'panel', onsubmit: (e) => { e.preventDefault(); start().catch((err) => { stop(); fill(msg, errorBox(err)); }); } },
      h('p', { class: 'muted' }, t('live.hint')),
      h('label', { class: 'check', for: 'live-drill', style: 'font-size:1.1rem' }, drill, t('live.drill')),
      h('div', { class: 'form-grid' }, field(t('live.areas'), areaSel), field(t('live.priority'), prioSel),
        field(t('clusters.volume'), volume, t('live.volume_hint'))),
      field(t('live.level'), meter),
      h('div', { class: 'row', style: 'margin-top:.6rem' }, startBtn, stopBtn)),
    h('section', { class: 'panel', 'aria-live': 'polite' }, state, msg),
    h('section', { class: 'panel', 'aria-labelledby': 'h-live-calls' }, h('h2', { id: 'h-live-calls' }, t('live.calls')), onAir));
  // Leaving the screen ends the call.
  window.addEventListener('hashchange', stop, { once: true });
  await refresh();
  return () => { closed = true; clearTimeout(timer); stop(); main.classList.remove('drill'); };
}
