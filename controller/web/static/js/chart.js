// chart.js: bar charts as SVG — crisp on screen and on paper, no library.

import { s } from './ui.js';

/**
 * bars draws groups of bars: rows [{label, values: [n, …]}], series
 * [{name, cls}] naming each value, with a legend and value labels.
 */
export function bars(rows, series, { title, unit, format } = {}) {
  const fmt = format || ((v) => String(v));
  // The chart is scaled to the page's width: drawn 760 wide on a phone's
  // 350 px its words were 5 px high. On a narrow screen it is drawn
  // narrow, its words at their size, its legend on as many lines as
  // it needs.
  const narrow = window.matchMedia('(max-width: 760px)').matches;
  const width = narrow ? 360 : 760, left = narrow ? 110 : 170, right = narrow ? 50 : 70, chars = narrow ? 16 : 26;
  const rowH = 18 * series.length + 12;
  const legend = [];
  const x0 = narrow ? 0 : left;
  let lx = x0, ly = 6;
  series.forEach((se) => {
    const w = 24 + se.name.length * 7.5;
    if (lx > x0 && lx + w > width) { lx = x0; ly += 18; }
    legend.push({ se, x: lx, y: ly });
    lx += w;
  });
  const top = ly + 24;
  const height = top + rows.length * rowH + 30;
  const max = Math.max(1, ...rows.flatMap((r) => r.values));
  const scale = (width - left - right) / max;
  const out = [];
  rows.forEach((r, i) => {
    const y0 = top + i * rowH;
    out.push(s('text', { x: left - 8, y: y0 + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, r.label.length > chars ? r.label.slice(0, chars - 1) + '…' : r.label));
    r.values.forEach((v, j) => {
      const y = y0 + j * 18;
      out.push(s('rect', { class: series[j].cls, x: left, y, width: Math.max(v * scale, v ? 1 : 0), height: 15 },
        s('title', {}, `${r.label} — ${series[j].name}: ${fmt(v)}${unit ? ' ' + unit : ''}`)));
      out.push(s('text', { x: left + v * scale + 4, y: y + 12 }, fmt(v)));
    });
  });
  legend.forEach(({ se, x, y }) => {
    out.push(s('rect', { class: se.cls, x, y, width: 12, height: 12 }));
    out.push(s('text', { x: x + 16, y: y + 10 }, se.name));
  });
  return s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title || '' }, s('title', {}, title || ''), out);
}
