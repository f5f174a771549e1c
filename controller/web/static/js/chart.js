// chart.js: bar charts as SVG — crisp on screen and on paper, no library.

import { s } from './ui.js';

/**
 * bars draws groups of bars: rows [{label, values: [n, …]}], series
 * [{name, cls}] naming each value, with a legend and value labels.
 */
export function bars(rows, series, { title, unit, format } = {}) {
  const fmt = format || ((v) => String(v));
  const rowH = 18 * series.length + 12, left = 170, right = 70, width = 760;
  const height = 30 + rows.length * rowH + 30;
  const max = Math.max(1, ...rows.flatMap((r) => r.values));
  const scale = (width - left - right) / max;
  const out = [];
  rows.forEach((r, i) => {
    const y0 = 30 + i * rowH;
    out.push(s('text', { x: left - 8, y: y0 + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, r.label.length > 26 ? r.label.slice(0, 25) + '…' : r.label));
    r.values.forEach((v, j) => {
      const y = y0 + j * 18;
      out.push(s('rect', { class: series[j].cls, x: left, y, width: Math.max(v * scale, v ? 1 : 0), height: 15 },
        s('title', {}, `${r.label} — ${series[j].name}: ${fmt(v)}${unit ? ' ' + unit : ''}`)));
      out.push(s('text', { x: left + v * scale + 4, y: y + 12 }, fmt(v)));
    });
  });
  let lx = left;
  series.forEach((se) => {
    out.push(s('rect', { class: se.cls, x: lx, y: 6, width: 12, height: 12 }));
    out.push(s('text', { x: lx + 16, y: 16 }, se.name));
    lx += 24 + se.name.length * 7.5;
  });
  return s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title || '' }, s('title', {}, title || ''), out);
}
