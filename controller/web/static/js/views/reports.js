// Báo cáo: broadcast figures per commune and cluster over a period, as SVG
// charts that print well, with CSV export; and the year's report by month
// (communes and districts report before 10 December each year). The CSV
// downloads ask for a byte order mark (bom=true): without it, Excel reads
// the file in the PC's code page and garbles the Vietnamese names.

import { api, apiURL, now } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, field, options, errorBox, fmtNumber, fmtDate, vnParts, dayInput, readFields } from '../ui.js';
import { bars } from '../chart.js';

const pad = (n) => String(n).padStart(2, '0');

export async function render(ctx, main) {
  const p = vnParts(now());
  const areaSel = h('select', { id: 'report-area' }, options(ctx.areaOptions(), ctx.defaultArea()));
  const from = dayInput({ id: 'report-from', value: `${p.y}-${pad(p.m)}-01`, required: true });
  const to = dayInput({ id: 'report-to', value: p.m === 12 ? `${p.y + 1}-01-01` : `${p.y}-${pad(p.m + 1)}-01`, required: true });
  const year = h('input', { type: 'number', id: 'report-year', min: 2020, max: 2100, value: p.y });
  const body = h('div');
  const yearBody = h('div');
  const show = () => {
    const v = readFields({ from, to });
    return v ? period(ctx, body, areaSel.value, v.from, v.to).catch((e) => fill(body, errorBox(e))) : Promise.resolve();
  };
  fill(main, h('h1', {}, t('reports.title')),
    h('form', { class: 'panel no-print', onsubmit: (e) => { e.preventDefault(); show(); } },
      h('div', { class: 'form-grid' }, field(t('common.area'), areaSel), field(t('reports.from'), from), field(t('reports.to'), to, t('reports.to_hint'))),
      h('div', { class: 'row', style: 'margin-top:.6rem' }, h('button', { type: 'submit' }, t('reports.show')),
        h('button', { type: 'button', class: 'secondary', onclick: () => window.print() }, t('reports.print')))),
    body,
    h('form', { class: 'panel no-print', onsubmit: (e) => { e.preventDefault(); yearly(ctx, yearBody, areaSel.value, Number(year.value)).catch((err) => fill(yearBody, errorBox(err))); } },
      h('h2', {}, t('reports.yearly')), h('p', { class: 'hint' }, t('reports.yearly_hint')),
      h('div', { class: 'form-grid' }, field(t('reports.year'), year)),
      h('div', { class: 'row', style: 'margin-top:.6rem' }, h('button', { type: 'submit' }, t('reports.show_year')))),
    yearBody);
  await show();
}

const minutes = (ms) => Math.round(ms / 600) / 100;

/**
 * notDue counts the plays of figures f whose time has not come (open, and
 * not overdue: failed_to_sound are open too). A period runs to the end of
 * the month, so they are most of a month's plays early in it.
 */
const notDue = (f) => f.open - (f.failed_to_sound || 0);

/**
 * rate is the completion rate over the plays that were due, or '—' when
 * none was: counting those to come made a commune whose every bulletin
 * so far played read 50%.
 */
function rate(f) {
  const due = f.scheduled - notDue(f);
  return due > 0 ? `${Math.round((100 * f.completed) / due)}%` : '—';
}

async function period(ctx, body, area, from, to) {
  const q = { area, from, to };
  const rep = await api('GET', '/reports/broadcast', undefined, q);
  const f = rep.total;
  const notPlayed = (x) => x.failed + x.missed + x.preempted;
  const rows = rep.areas.map((a) => ({ label: a.name || a.area, values: [a.completed, notPlayed(a), a.open] }));
  fill(body,
    h('section', { class: 'panel', 'aria-labelledby': 'h-rep' },
      h('h2', { id: 'h-rep' }, t('reports.period', { area: ctx.areaName(area), from: fmtDate(from), to: fmtDate(to) })),
      h('div', { class: 'stats' },
        stat(fmtNumber(f.scheduled), t('reports.scheduled')), stat(fmtNumber(f.completed), t('reports.completed')),
        stat(rate(f), t('reports.rate')), stat(fmtNumber(notDue(f)), t('reports.not_due')), stat(fmtNumber(minutes(f.played_ms), 1), t('reports.minutes')),
        stat(fmtNumber(f.failed_to_sound), t('reports.failed_to_sound')), stat(fmtNumber(f.emergency), t('reports.emergency')),
        stat(fmtNumber(f.drill || 0), t('reports.drill')),
        // Counted as played, but a fault kept the pole silent meanwhile.
        stat(fmtNumber(f.silenced || 0), t('reports.silenced'), { id: 'report-silenced', class: f.silenced > 0 ? 'panel silent-fault' : 'panel' })),
      h('p', { class: 'no-print' }, h('a', { class: 'button secondary', id: 'report-csv', href: apiURL('/reports/broadcast', { ...q, format: 'csv', bom: 'true' }), download: `bao-cao-${area}-${from}.csv` }, t('reports.csv'))),
      rows.length ? bars(rows, [{ name: t('reports.completed'), cls: 'bar-done' }, { name: t('reports.not_completed'), cls: 'bar-other' }, { name: t('reports.open'), cls: 'bar-planned' }], { title: t('reports.chart_areas') }) : null),
    h('section', { class: 'panel', 'aria-labelledby': 'h-nodes' }, h('h2', { id: 'h-nodes' }, t('reports.per_node')),
      rep.nodes.length === 0 ? h('p', { class: 'muted' }, t('reports.nothing')) :
        h('div', { class: 'table-wrap' }, h('table', { id: 'report-nodes' },
          h('thead', {}, h('tr', {}, [t('clusters.name'), t('common.area'), t('reports.scheduled'), t('reports.completed'), t('reports.failed'), t('reports.missed'), t('reports.preempted'), t('reports.minutes'), t('reports.silenced')].map((x, i) => h('th', { class: i > 1 ? 'num' : '' }, x)))),
          h('tbody', {}, rep.nodes.map((n) => h('tr', {},
            h('td', { title: n.node }, n.name || n.node), h('td', {}, ctx.areaName(n.area)),
            [n.scheduled, n.completed, n.failed, n.missed, n.preempted].map((v) => h('td', { class: 'num' }, fmtNumber(v))),
            h('td', { class: 'num' }, fmtNumber(minutes(n.played_ms), 1)),
            h('td', { class: n.silenced > 0 ? 'num silent-fault' : 'num', dataset: { silenced: String(n.silenced || 0) } }, fmtNumber(n.silenced || 0)))))))));
}

function stat(value, label, attrs = { class: 'panel' }) {
  return h('div', attrs, h('div', { class: 'stat' }, value), h('div', {}, label));
}

async function yearly(ctx, body, area, y) {
  fill(body, h('p', { class: 'loading' }, t('common.loading')));
  const months = Array.from({ length: 12 }, (_, i) => i + 1);
  const reps = await Promise.all(months.map((m) => api('GET', '/reports/broadcast', undefined, {
    area, from: `${y}-${pad(m)}-01`, to: m === 12 ? `${y + 1}-01-01` : `${y}-${pad(m + 1)}-01`,
  })));
  const whole = await api('GET', '/reports/broadcast', undefined, { area, from: `${y}-01-01`, to: `${y + 1}-01-01` });
  const label = (m) => t('reports.month', { m });
  fill(body, h('section', { class: 'panel', 'aria-labelledby': 'h-year', id: 'report-year-result' },
    h('h2', { id: 'h-year' }, t('reports.year_of', { year: y, area: ctx.areaName(area) })),
    h('p', { class: 'no-print' }, h('a', { class: 'button secondary', href: apiURL('/reports/broadcast', { area, from: `${y}-01-01`, to: `${y + 1}-01-01`, format: 'csv', bom: 'true' }), download: `bao-cao-nam-${y}-${area}.csv` }, t('reports.csv'))),
    bars(reps.map((r, i) => ({ label: label(i + 1), values: [minutes(r.total.planned_ms), minutes(r.total.played_ms)] })),
      [{ name: t('reports.minutes_planned'), cls: 'bar-planned' }, { name: t('reports.minutes'), cls: 'bar-done' }],
      { title: t('reports.chart_minutes'), format: (v) => fmtNumber(v, 1) }),
    h('h3', {}, t('reports.emergency_by_month')),
    bars(reps.map((r, i) => ({ label: label(i + 1), values: [r.total.emergency] })), [{ name: t('reports.emergency'), cls: 'bar-other' }], { title: t('reports.emergency_by_month') }),
    h('h3', {}, t('reports.per_commune')),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, [t('common.area'), t('reports.scheduled'), t('reports.completed'), t('reports.rate'), t('reports.minutes'), t('reports.emergency')].map((x, i) => h('th', { class: i ? 'num' : '' }, x)))),
      h('tbody', {}, whole.areas.map((a) => h('tr', {}, h('td', {}, a.name || a.area),
        [fmtNumber(a.scheduled), fmtNumber(a.completed), rate(a), fmtNumber(minutes(a.played_ms), 1), fmtNumber(a.emergency)].map((v) => h('td', { class: 'num' }, v)))))))));
}
