// Nhật ký: who did what, when, from where — the audit log of the user's
// area, newest first.

import { api, now } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, field, options, fmtDateTime, errorBox, ymd, addDays, vnDate, rfc3339, dayInput, readFields } from '../ui.js';

// RFC3339 finds the API's times (in UTC) in an entry's detail,
// "start=2026-03-02T00:00:00Z", to say them as the console says every
// time: in Vietnam, "07:00 02/03/2026".
const RFC3339 = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})/g;

function detailText(detail) {
  return detail.replace(RFC3339, (at) => fmtDateTime(at));
}

export async function render(ctx, main) {
  const today = ymd(now());
  const actor = h('input', { id: 'audit-actor', autocapitalize: 'none' });
  const areaSel = h('select', { id: 'audit-area' }, options([['', t('audit.all_areas')], ...ctx.areaOptions()], ''));
  const from = dayInput({ id: 'audit-from', value: addDays(today, -7), required: true });
  const to = dayInput({ id: 'audit-to', value: today, required: true });
  const body = h('div');
  const load = async () => {
    const v = readFields({ from, to });
    if (!v) return;
    const { entries } = await api('GET', '/audit', undefined, {
      actor: actor.value.trim(), area: areaSel.value, from: rfc3339(vnDate(v.from)), to: rfc3339(vnDate(addDays(v.to, 1))), limit: 10000,
      order: 'newest', // past the limit, the newest are the ones kept
    });
    fill(body, entries.length === 0 ? h('p', { class: 'muted' }, t('audit.none')) :
      h('div', { class: 'table-wrap' }, h('table', { id: 'audit-table' },
        h('thead', {}, h('tr', {}, [t('common.time'), t('audit.actor'), t('audit.action'), t('audit.target'), t('common.area'), t('clusters.detail'), t('audit.remote')].map((x) => h('th', {}, x)))),
        h('tbody', {}, entries.map((e) => h('tr', {},
          h('td', {}, fmtDateTime(e.at)), h('td', {}, e.actor), h('td', {}, h('code', {}, e.action)), h('td', {}, e.target),
          h('td', {}, e.area ? ctx.areaName(e.area) : ''), h('td', { style: 'word-break:break-word' }, detailText(e.detail || '')), h('td', {}, e.remote || '')))))));
  };
  fill(main, h('h1', {}, t('audit.title')),
    h('form', { class: 'panel no-print', onsubmit: (e) => { e.preventDefault(); load().catch((err) => fill(body, errorBox(err))); } },
      h('div', { class: 'form-grid' }, field(t('audit.actor'), actor), field(t('common.area'), areaSel), field(t('reports.from'), from), field(t('audit.to'), to)),
      h('div', { class: 'row', style: 'margin-top:.6rem' }, h('button', { type: 'submit' }, t('audit.show')))),
    h('section', { class: 'panel' }, body));
  await load();
}
