// Thư viện âm thanh: upload WAV/MP3 with a progress bar, have typed
// Vietnamese read out (text-to-speech) and hear it before use, search;
// keep warnings on the clusters at all times for emergencies (standing
// content: docs/content.md).

import { api, upload } from '../api.js';
import { player } from '../audio.js';
import { t } from '../i18n.js';
import { h, fill, field, options, fmtDuration, fmtDateTime, fmtNumber, errorBox, errorText, waveform, toast } from '../ui.js';
import { standingList, standingReady } from '../standing.js';

export async function render(ctx, main) {
  const list = h('div');
  const standingPanel = h('section', { class: 'panel', id: 'standing', 'aria-labelledby': 'h-standing' });
  const q = h('input', { type: 'search', id: 'library-search', placeholder: t('library.search_hint') });
  let timer = 0;
  const load = async () => {
    const [{ content }, standing] = await Promise.all([
      api('GET', '/content', undefined, { q: q.value.trim() }), standingList()]);
    const kept = new Map(standing.standing.map((s) => [s.content, s]));
    const always = new Set(standing.always || []);
    showStanding(ctx, standingPanel, standing);
    fill(list, content.length === 0 ? h('p', { class: 'muted' }, t('library.empty')) :
      h('div', { class: 'table-wrap' }, h('table', { id: 'library-table' },
        h('thead', {}, h('tr', {}, h('th', {}, t('common.title')), h('th', {}, t('library.duration')), h('th', {}, t('library.shape')), h('th', {}, t('library.uploader')), h('th', {}, t('library.listen')), h('th', {}, t('library.standing_col')))),
        h('tbody', {}, content.map((c) => h('tr', { dataset: { content: c.id, standing: kept.has(c.id) ? 'yes' : 'no' } },
          h('td', {}, c.title, h('div', { class: 'hint' }, sourceLabel(c))),
          h('td', { class: 'num' }, fmtDuration(c.duration_ms)),
          h('td', { style: 'min-width:8rem' }, waveform(c.waveform, t('library.shape'))),
          h('td', {}, c.created_by, h('div', { class: 'hint' }, fmtDateTime(c.created_at))),
          h('td', {}, player(c.id, c.title, false)),
          h('td', {}, always.has(c.id) ? h('span', { class: 'hint' }, t('library.standing_always')) : standingCell(ctx, c, kept.get(c.id), load))))))));
  };
  q.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => load().catch((e) => fill(list, errorBox(e))), 300); });

  fill(main, h('h1', {}, t('library.title')),
    ctx.may('content.upload') ? h('div', { class: 'grid' }, uploadForm(load), speechForm(load)) : null,
    standingPanel,
    h('section', { class: 'panel', 'aria-labelledby': 'h-lib' }, h('h2', { id: 'h-lib' }, t('library.all')), field(t('library.search'), q), list));
  await load();
  return () => clearTimeout(timer);
}

/**
 * showStanding lists the content kept on the clusters at all times, with
 * how many of the clusters have it: what an emergency can play at once.
 */
function showStanding(ctx, panel, list) {
  const items = list.standing || [];
  fill(panel, h('h2', { id: 'h-standing' }, t('library.standing_title')),
    h('p', { class: 'hint' }, t('library.standing_explain', { mib: fmtNumber((list.max_bytes || 0) / 1048576) })),
    items.length === 0 ? h('p', { class: 'muted' }, t('library.standing_none')) :
      h('ul', { id: 'standing-list' }, items.map((s) => h('li', { dataset: { content: s.content } },
        h('strong', {}, s.title), ` · ${fmtDuration(s.duration_ms)} · `, keptWhere(ctx, s.areas), ' · ',
        h('span', { class: s.ready < s.nodes ? 's-pending' : 's-completed' }, standingReady(s))))));
}

/**
 * keptWhere names the areas that keep standing content: those the officer
 * sees by name, the others (elsewhere in the province) by their number.
 */
function keptWhere(ctx, areas) {
  const known = areas.filter((a) => ctx.areaByID.has(a) || ctx.aboveByID.has(a));
  const names = known.map((a) => ctx.areaName(a)).join(', ');
  const others = areas.length - known.length;
  if (!others) return names;
  if (!names) return t('library.standing_elsewhere', { n: fmtNumber(others) });
  return names + ' ' + t('library.standing_elsewhere_more', { n: fmtNumber(others) });
}

/**
 * standingCell is a content's standing state in the library, with what
 * changes it for an officer who may alert: a commune officer's one button
 * keeps it on the commune's clusters or stops; an officer over several
 * areas chooses them (a storm-surge warning for the coastal districts
 * only).
 */
function standingCell(ctx, c, s, reload) {
  const area = ctx.defaultArea();
  const here = s && s.areas.includes(area);
  const state = s ? h('div', { class: 'hint' }, standingReady(s)) : null;
  if (!ctx.may('emergency') || !area) return state || '—';
  const scope = ctx.areaOptions();
  if (scope.length > 1) return h('div', {}, standingPicker(ctx, c, s, scope, reload), state);
  const button = h('button', {
    type: 'button', class: here ? 'secondary' : '', dataset: { standing: c.id },
    onclick: async () => {
      const areas = (s ? s.areas : []).filter((a) => a !== area);
      if (!here) areas.push(area);
      button.disabled = true;
      try {
        await api('PUT', `/content/${encodeURIComponent(c.id)}/standing`, { areas });
        toast(t(here ? 'library.standing_removed' : 'library.standing_added', { title: c.title, area: ctx.areaName(area) }));
        await reload();
      } catch (err) {
        toast(errorText(err), true);
        button.disabled = false;
      }
    },
  }, t(here ? 'library.standing_remove' : 'library.standing_add'));
  return h('div', {}, button, state);
}

/**
 * standingPicker chooses the areas whose clusters keep c, among those the
 * officer sees; areas outside them that keep it stay as they are.
 */
function standingPicker(ctx, c, s, scope, reload) {
  const kept = s ? s.areas : [];
  const seen = new Set(scope.map(([id]) => id));
  const key = c.id.slice(0, 16);
  const boxes = scope.map(([id, label]) => {
    const box = h('input', { type: 'checkbox', value: id, id: `keep-${key}-${id}`, checked: kept.includes(id) });
    return h('label', { class: 'check', for: box.id }, box, label);
  });
  const status = h('div', { 'aria-live': 'polite' });
  const save = h('button', {
    type: 'button', dataset: { standingSave: c.id },
    onclick: async () => {
      const chosen = ctx.outermost(boxes.map((l) => l.querySelector('input')).filter((b) => b.checked).map((b) => b.value));
      const areas = [...kept.filter((a) => !seen.has(a)), ...chosen];
      save.disabled = true;
      fill(status);
      try {
        await api('PUT', `/content/${encodeURIComponent(c.id)}/standing`, { areas });
        toast(chosen.length ?
          t('library.standing_added', { title: c.title, area: chosen.map((a) => ctx.areaName(a)).join(', ') }) :
          t('library.standing_cleared', { title: c.title }));
        await reload();
      } catch (err) {
        fill(status, errorBox(err));
        save.disabled = false;
      }
    },
  }, t('library.standing_save'));
  return h('details', { class: 'standing-pick', dataset: { standing: c.id } },
    h('summary', {}, t(kept.length ? 'library.standing_change' : 'library.standing_add')),
    h('p', { class: 'hint' }, t('library.standing_pick')),
    h('div', { class: 'checks' }, boxes), save, status);
}

function sourceLabel(c) {
  const src = c.source || {};
  if (src.format === 'tts/espeak-ng') return t('library.from_tts');
  return src.filename ? `${src.filename} (${src.format})` : src.format || '';
}

function uploadForm(reload) {
  const file = h('input', { type: 'file', id: 'upload-file', accept: '.wav,.mp3,audio/wav,audio/x-wav,audio/mpeg', required: true });
  const title = h('input', { id: 'upload-title', maxlength: 200 });
  const trim = h('input', { type: 'checkbox', id: 'upload-trim' });
  const bar = h('progress', { max: 1, value: 0, hidden: true, id: 'upload-progress', 'aria-label': t('library.progress') });
  const status = h('div', { 'aria-live': 'polite', id: 'upload-status' });
  const submit = h('button', { type: 'submit' }, t('library.upload'));
  return h('form', {
    class: 'panel', id: 'upload-form', onsubmit: async (e) => {
      e.preventDefault();
      if (!file.files[0]) return;
      const form = new FormData();
      form.append('title', title.value.trim() || file.files[0].name.replace(/\.[^.]+$/, ''));
      form.append('file', file.files[0]);
      submit.disabled = true;
      bar.hidden = false;
      bar.value = 0;
      fill(status, t('library.uploading'));
      try {
        const c = await upload('/content', form, (p) => { bar.value = p; if (p >= 1) fill(status, t('library.converting')); }, { trim: trim.checked ? 'true' : '' });
        bar.value = 1;
        fill(status, h('p', {}, t('library.uploaded', { title: c.title, duration: fmtDuration(c.duration_ms) })));
        toast(t('library.uploaded', { title: c.title, duration: fmtDuration(c.duration_ms) }));
        file.value = '';
        title.value = '';
        await reload();
      } catch (err) {
        fill(status, errorBox(err));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h2', {}, t('library.upload_title')),
  field(t('library.file'), file, t('library.file_hint')),
  field(t('common.title'), title, t('library.title_hint')),
  h('label', { class: 'check' }, trim, t('library.trim')),
  h('div', { class: 'row', style: 'margin-top:.6rem' }, submit), bar, status);
}

function speechForm(reload) {
  const text = h('textarea', { id: 'tts-text', rows: 5, maxlength: 10000, required: true, placeholder: 'Kính gửi bà con thôn…' });
  const voice = h('select', { id: 'tts-voice' }, options([['vi', t('library.voice_north')], ['vi-vn-x-central', t('library.voice_central')], ['vi-vn-x-south', t('library.voice_south')]], 'vi'));
  const rate = h('select', { id: 'tts-rate' }, options([['0.8', t('library.rate_slow')], ['1', t('library.rate_normal')], ['1.2', t('library.rate_fast')]], '1'));
  const title = h('input', { id: 'tts-title', maxlength: 200 });
  const preview = h('div', { id: 'tts-preview', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, t('library.speak'));
  return h('form', {
    class: 'panel', id: 'tts-form', onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      fill(preview, t('library.speaking'));
      try {
        const c = await api('POST', '/content/tts', { text: text.value, voice: voice.value, rate: Number(rate.value), title: title.value.trim() || undefined });
        fill(preview, h('p', {}, t('library.spoken', { title: c.title, duration: fmtDuration(c.duration_ms) })), player(c.id, c.title, true), waveform(c.waveform, t('library.shape')));
        await reload();
      } catch (err) {
        fill(preview, errorBox(err));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h2', {}, t('library.tts_title')),
  field(t('library.text'), text, t('library.text_hint')),
  h('div', { class: 'form-grid' }, field(t('library.voice'), voice), field(t('library.rate'), rate)),
  field(t('common.title'), title, t('library.title_hint')),
  h('div', { class: 'row', style: 'margin-top:.6rem' }, submit), preview);
}
