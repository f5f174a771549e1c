// map.js: an offline map of clusters drawn as SVG from the nodes'
// coordinates — no tile server, which boards' and offices' networks may
// not reach. Each area's outline is the hull around its clusters.

import { h, s } from './ui.js';
import { t } from './i18n.js';

const W = 800, H = 520, PAD = 40;

/** hull is the convex hull of points [x, y] (Andrew's monotone chain). */
export function hull(pts) {
  const p = [...pts].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower.at(-2), lower.at(-1), q) <= 0) lower.pop(); lower.push(q); }
  for (const q of p.reverse()) { while (upper.length >= 2 && cross(upper.at(-2), upper.at(-1), q) <= 0) upper.pop(); upper.push(q); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

/** outline pads a hull into a rounded shape around its points. */
function outline(pts, r) {
  const ring = [];
  for (const [x, y] of pts) for (let a = 0; a < 12; a++) ring.push([x + r * Math.cos(a * Math.PI / 6), y + r * Math.sin(a * Math.PI / 6)]);
  return hull(ring);
}

/**
 * clusterMap draws nodes (with lat/lon) coloured by health(n), grouped
 * into outlines per area; onPick(node) opens one.
 */
export function clusterMap(nodes, { health, areaName, onPick }) {
  const placed = nodes.filter((n) => Number.isFinite(n.lat) && Number.isFinite(n.lon) && (n.lat !== 0 || n.lon !== 0));
  if (placed.length === 0) return h('p', { class: 'muted' }, t('map.no_positions'));
  const lats = placed.map((n) => n.lat), lons = placed.map((n) => n.lon);
  const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
  const kx = Math.cos(midLat * Math.PI / 180); // metres per degree of longitude shrink with latitude
  const x0 = Math.min(...lons) * kx, x1 = Math.max(...lons) * kx;
  const y0 = Math.min(...lats), y1 = Math.max(...lats);
  const span = Math.max(x1 - x0, y1 - y0, 0.002);
  const scale = Math.min((W - 2 * PAD) / span, (H - 2 * PAD) / span);
  const ox = (W - (x1 - x0) * scale) / 2, oy = (H - (y1 - y0) * scale) / 2;
  const pos = (n) => [ox + (n.lon * kx - x0) * scale, H - (oy + (n.lat - y0) * scale)];

  const byArea = new Map();
  for (const n of placed) { if (!byArea.has(n.area)) byArea.set(n.area, []); byArea.get(n.area).push(n); }
  const shapes = [];
  for (const [area, list] of byArea) {
    const pts = outline(list.map(pos), 22);
    const cx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
    const top = Math.min(...pts.map((p) => p[1]));
    shapes.push(s('g', {},
      s('polygon', { class: 'outline', points: pts.map((p) => p.map((v) => v.toFixed(1)).join(',')).join(' ') }),
      s('text', { class: 'label', x: cx, y: Math.max(top - 4, 12), 'text-anchor': 'middle' }, areaName(area))));
  }
  const dots = placed.map((n) => {
    const [x, y] = pos(n);
    const state = health(n);
    const label = `${n.name} (${n.id}): ${t('health.' + state)}`;
    const open = () => onPick(n);
    return s('circle', {
      class: `node ${state}`, cx: x.toFixed(1), cy: y.toFixed(1), r: 9, tabindex: 0, role: 'link', 'aria-label': label,
      'data-node': n.id, onclick: open, onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } },
    }, s('title', {}, label));
  });
  const svg = s('svg', { class: 'map', viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': t('map.label') }, shapes, dots);
  const legend = h('div', { class: 'legend' }, ['online', 'faulty', 'stale', 'offline', 'never', 'awaiting'].map((k) =>
    h('span', {}, h('span', { class: 'dot', style: `background:var(--${{ online: 'ok', faulty: 'warn', stale: 'warn', offline: 'bad', never: 'never', awaiting: 'never' }[k]})` }), t('health.' + k))));
  const unplaced = nodes.length - placed.length;
  return h('div', {}, svg, legend, unplaced ? h('p', { class: 'hint' }, t('map.unplaced', { n: unplaced })) : null);
}
