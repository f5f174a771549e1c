// audio.js: let the browser play content. Nodes get IMA ADPCM WAV
// (protocol/nodeaudio), which browsers do not decode, so the console
// fetches the same bytes from the API and decodes them here into a PCM WAV
// for an <audio> player. Decoding a 10-minute bulletin takes milliseconds.

import { apiURL } from './api.js';
import { t } from './i18n.js';
import { h } from './ui.js';

const STEPS = [
  7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
  50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230,
  253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
  1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327,
  3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442,
  11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
  32767];
const INDEX = [-1, -1, -1, -1, 2, 4, 6, 8];

/** chunks reads a RIFF/WAVE file's chunks: {fmt, fact, data} as DataViews. */
function chunks(buf) {
  const v = new DataView(buf);
  const tag = (o) => String.fromCharCode(v.getUint8(o), v.getUint8(o + 1), v.getUint8(o + 2), v.getUint8(o + 3));
  if (buf.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error(t('audio.not_wav'));
  const out = {};
  for (let o = 12; o + 8 <= buf.byteLength;) {
    const id = tag(o), size = v.getUint32(o + 4, true);
    out[id.trim()] = new DataView(buf, o + 8, Math.min(size, buf.byteLength - o - 8));
    o += 8 + size + (size & 1);
  }
  if (!out.fmt || !out.data) throw new Error(t('audio.not_wav'));
  return out;
}

/** decodeIMA decodes mono IMA ADPCM blocks into 16-bit samples. */
export function decodeIMA(data, blockAlign, samples) {
  const out = new Int16Array(samples);
  let k = 0;
  for (let b = 0; b + blockAlign <= data.byteLength && k < samples; b += blockAlign) {
    let pred = data.getInt16(b, true);
    let index = Math.min(data.getUint8(b + 2), 88);
    out[k++] = pred;
    for (let i = 4; i < blockAlign && k < samples; i++) {
      const byte = data.getUint8(b + i);
      for (const c of [byte & 15, byte >> 4]) {
        if (k >= samples) break;
        const step = STEPS[index];
        let d = step >> 3;
        if (c & 4) d += step;
        if (c & 2) d += step >> 1;
        if (c & 1) d += step >> 2;
        pred = Math.max(-32768, Math.min(32767, pred + (c & 8 ? -d : d)));
        index = Math.max(0, Math.min(88, index + INDEX[c & 7]));
        out[k++] = pred;
      }
    }
  }
  return out.subarray(0, k);
}

function pcmWAV(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < 4; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, 'RIFF'); v.setUint32(4, 36 + samples.length * 2, true); str(8, 'WAVE');
  str(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, 'data'); v.setUint32(40, samples.length * 2, true);
  new Int16Array(buf, 44).set(samples);
  return buf;
}

/** playableURL fetches content's audio and returns a blob: URL a browser plays. */
export async function playableURL(id) {
  const resp = await fetch(apiURL(`/content/${encodeURIComponent(id)}/audio`), { credentials: 'same-origin' });
  if (!resp.ok) throw new Error(t('audio.fetch_failed', { status: resp.status }));
  return URL.createObjectURL(new Blob([toPCM(await resp.arrayBuffer())], { type: 'audio/wav' }));
}

/** toPCM turns a node-format (IMA ADPCM) WAV into a 16-bit PCM WAV; PCM passes through. */
export function toPCM(buf) {
  const c = chunks(buf);
  const format = c.fmt.getUint16(0, true), channels = c.fmt.getUint16(2, true), rate = c.fmt.getUint32(4, true);
  let wav = buf;
  if (format === 0x11) {
    if (channels !== 1) throw new Error(t('audio.not_wav'));
    const blockAlign = c.fmt.getUint16(12, true);
    const samples = c.fact ? c.fact.getUint32(0, true) : Math.floor(c.data.byteLength / blockAlign) * (1 + (blockAlign - 4) * 2);
    wav = pcmWAV(decodeIMA(c.data, blockAlign, samples), rate);
  }
  return wav;
}

/**
 * player is a listen button that becomes an <audio> player; with load it
 * fetches at once (a preview the officer just made).
 */
export function player(id, title, load) {
  const box = h('span', { class: 'player', dataset: { content: id } });
  const start = async (autoplay) => {
    box.replaceChildren(t('common.loading'));
    try {
      const url = await playableURL(id);
      const audio = h('audio', { controls: true, src: url, 'aria-label': t('library.listen_to', { title }) });
      box.replaceChildren(audio);
      if (autoplay) audio.play().catch(() => { /* the user presses play */ });
    } catch (err) {
      box.replaceChildren(h('span', { class: 'error' }, err.message));
    }
  };
  if (load) start(false);
  else box.append(h('button', { type: 'button', class: 'secondary', onclick: () => start(true), 'aria-label': t('library.listen_to', { title }) }, '▶ ', t('library.listen')));
  return box;
}
