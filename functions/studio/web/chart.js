// Charts as SVG built with DOM calls: no markup from data, so nothing a
// sensor or a customer wrote can become an element.
const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const W = 800, H = 260, L = 56, R = 12, T = 12, B = 34;

function fmtTime(ms, span) {
  const d = new Date(ms);
  return span > 2 * 86400e3 ? d.toISOString().slice(5, 10) : d.toISOString().slice(11, 16);
}

// lineChart draws points [{t, v}] (t in ms) over [from, to]; each point
// is a circle carrying its time and value, for readers and tests alike.
export function lineChart(points, { from, to, unit = '', title = '' } = {}) {
  const svg = el('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${points.length} points` });
  svg.appendChild(el('title', {}, `${title} (${points.length} points)`));
  if (from === undefined) from = points.length ? points[0].t : Date.now() - 3600e3;
  if (to === undefined) to = points.length ? points[points.length - 1].t : Date.now();
  if (to <= from) to = from + 1;
  let lo = Math.min(...points.map((p) => p.v)), hi = Math.max(...points.map((p) => p.v));
  if (!points.length) { lo = 0; hi = 1; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (t) => L + (W - L - R) * (t - from) / (to - from);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  svg.appendChild(el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.appendChild(el('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    svg.appendChild(el('text', { x: 4, y: y(v) + 4 }, `${+v.toFixed(2)}${unit}`));
    const t = from + (to - from) * i / 4;
    svg.appendChild(el('text', { x: x(t) - 16, y: H - 12 }, fmtTime(t, to - from)));
  }
  if (!points.length) {
    svg.appendChild(el('text', { x: W / 2 - 60, y: H / 2 }, 'No data in this range'));
    return svg;
  }
  svg.appendChild(el('polyline', { class: 'line', points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
  for (const p of points) {
    const c = el('circle', { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5, 'data-t': new Date(p.t).toISOString(), 'data-v': p.v });
    c.appendChild(el('title', {}, `${new Date(p.t).toISOString()}: ${p.v}${unit}`));
    svg.appendChild(c);
  }
  return svg;
}

// barChart draws labelled bars [{label, value, cls}].
export function barChart(bars, { title = '' } = {}) {
  const svg = el('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title + ': ' + bars.map((b) => `${b.label} ${b.value}`).join(', ') });
  svg.appendChild(el('title', {}, title));
  const max = Math.max(1, ...bars.map((b) => b.value));
  const bw = (W - L - R) / Math.max(1, bars.length);
  svg.appendChild(el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  bars.forEach((b, i) => {
    const h = (H - T - B) * b.value / max;
    svg.appendChild(el('rect', { class: b.cls || 'ok', x: L + i * bw + bw * 0.2, y: H - B - h, width: bw * 0.6, height: h, 'data-label': b.label, 'data-value': b.value }));
    svg.appendChild(el('text', { x: L + i * bw + bw * 0.2, y: H - 12 }, `${b.label}: ${b.value}`));
  });
  return svg;
}
