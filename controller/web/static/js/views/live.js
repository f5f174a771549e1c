// Phát trực tiếp: the officer speaks to areas through the browser's
// microphone. getUserMedia → an AudioWorklet at 16 kHz → 20 ms frames of
// 16-bit PCM → the GET /api/v1/live WebSocket (docs/live.md). The page
// shows a level meter and whether the call is on air.

import { t } from '../i18n.js';
import { h, fill, field, options, errorBox } from '../ui.js';

const RATE = 16000;
const FRAME = RATE / 50; // 20 ms

export async function render(ctx, main) {
  const areaSel = h('select', { id: 'live-areas', multiple: true, size: 8 }, options(ctx.areaOptions(), ''));
  const prioOpts = [['priority', t('live.prio_priority')]];
  if (ctx.may('emergency')) prioOpts.push(['emergency', t('live.prio_emergency')]);
  const prioSel = h('select', { id: 'live-priority' }, options(prioOpts, 'priority'));
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
    startBtn.disabled = false;
    stopBtn.disabled = true;
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
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/live?${q}`);
    ws.binaryType = 'arraybuffer';
    call = { ws, stream, audio };
    startBtn.disabled = true;
    stopBtn.disabled = false;
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
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const st = JSON.parse(e.data);
      if (st.state === 'on_air') {
        state.className = 'badge bad';
        fill(state, t('live.on_air'));
      } else if (st.state === 'ended') {
        state.className = 'muted';
        fill(state, t('live.ended', { n: st.frames || 0 }));
      }
    };
    ws.onclose = (e) => {
      if (call && call.ws === ws) stop();
      if (e.code !== 1000 && state.className !== 'muted') {
        state.className = 'muted';
        fill(state, t('live.off_air'));
        fill(msg, errorBox(new Error(t('live.closed'))));
      }
    };
  };

  fill(main, h('h1', {}, t('live.title')),
    h('form', { class: 'panel', onsubmit: (e) => { e.preventDefault(); start().catch((err) => { stop(); fill(msg, errorBox(err)); }); } },
      h('p', { class: 'muted' }, t('live.hint')),
      h('div', { class: 'form-grid' }, field(t('live.areas'), areaSel), field(t('live.priority'), prioSel)),
      field(t('live.level'), meter),
      h('div', { class: 'row', style: 'margin-top:.6rem' }, startBtn, stopBtn)),
    h('section', { class: 'panel', 'aria-live': 'polite' }, state, msg));
  // Leaving the screen ends the call.
  window.addEventListener('hashchange', stop, { once: true });
}
