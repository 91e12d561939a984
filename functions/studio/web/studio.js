// Studio's pages. Everything shown is built with DOM calls and
// textContent, never markup from data, so a label or an event cannot
// become script. The API is reached through Studio's own origin
// (/studio/api), which adds the signed-in person; writes carry the
// session's CSRF token.
import { lineChart, barChart } from './chart.js';

// Relative: Studio works under whatever path its service is reached at.
const API = 'api/v2';
const main = () => document.getElementById('main');
// page shows a page's content in place of the last one's.
const page = (...children) => main().replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
let cleanup = []; // what the current page must stop when it is left

// h builds an element: attrs set properties or attributes (on* adds a
// listener), children are nodes or strings (text).
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

function csrfToken() {
  for (const c of document.cookie.split('; ')) {
    const [k, v] = c.split('=');
    if (k === '__Host-studio-csrf') return v;
  }
  return '';
}

class APIError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

async function call(method, path, body, { base = API, headers = {} } = {}) {
  const init = { method, credentials: 'same-origin', headers: { 'X-CSRF-Token': csrfToken(), ...headers } };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers['Content-Type'] = 'application/json'; }
  const resp = await fetch(base + path, init);
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { error: { message: text } }; }
  if (resp.status === 401) { showSignIn(data.error && data.error.message); throw new APIError(401, 'signed out'); }
  if (!resp.ok) throw new APIError(resp.status, (data.error && data.error.message) || resp.statusText);
  data._etag = resp.headers.get('ETag');
  return data;
}
const get = (p) => call('GET', p);

async function all(path, key, limit = 5000) {
  const out = [];
  let token = '';
  do {
    const sep = path.includes('?') ? '&' : '?';
    const pg = await get(`${path}${sep}pageSize=1000${token ? '&pageToken=' + encodeURIComponent(token) : ''}`);
    out.push(...(pg[key] || []));
    token = pg.nextPageToken;
  } while (token && out.length < limit);
  return out;
}

function say(msg, bad = false) {
  const s = document.getElementById('status');
  s.textContent = msg;
  s.classList.toggle('bad', bad);
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { s.textContent = ''; }, 6000);
}

// guard runs an action, saying what failed instead of failing silently.
function guard(fn) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    try { await fn(ev); } catch (e) { if (e.code !== 401) say(e.message, true); }
  };
}

const id = (name) => name.split('/').pop();
const when = (s) => (s ? new Date(s).toLocaleString() : '—');
const table = (cls, head, rows) => h('div', { class: 'table-wrap' },
  h('table', { class: cls }, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)));
const field = (label, input) => h('label', { class: 'field' }, label, input);

// ---- Values of events ----

// primary is the event type that says what a device of a type measures.
const primary = { temperature: 'temperature', humidity: 'humidity', co2: 'co2', touch: 'touch', touchCounter: 'touchCount',
  proximity: 'objectPresent', proximityCounter: 'objectPresentCount', waterDetector: 'waterPresent', motion: 'motion',
  deskOccupancy: 'deskOccupancy', contact: 'contact', ccon: 'connectionStatus' };

// numeric gives, per event type, the value a chart draws and its unit.
const numeric = {
  temperature: [(d) => d.value, ' °C'], humidity: [(d) => d.relativeHumidity, ' %RH'], co2: [(d) => d.ppm, ' ppm'],
  pressure: [(d) => d.pascal, ' Pa'], batteryStatus: [(d) => d.percentage, ' %'], networkStatus: [(d) => d.signalStrength, ' %'],
  touchCount: [(d) => d.total, ''], objectPresentCount: [(d) => d.total, ''],
};

function summary(type, d) {
  if (!d) return '—';
  if (numeric[type]) return `${numeric[type][0](d)}${numeric[type][1]}`;
  if (d.state) return d.state;
  if (d.connection) return d.connection;
  if (type === 'touch') return `touched ${when(d.updateTime)}`;
  return JSON.stringify(d).slice(0, 60);
}

function lastSeen(reported) {
  let t = '';
  for (const v of Object.values(reported || {})) if (v && v.updateTime && v.updateTime > t) t = v.updateTime;
  return t;
}

// ---- Layout and routing ----

let me = null;

function showSignIn(reason) {
  for (const c of cleanup) c();
  cleanup = [];
  document.getElementById('tabs').replaceChildren();
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  page(h('div', { class: 'signin' },
    h('h1', {}, 'Sign in to SealedSense Studio'),
    reason ? h('p', { class: 'muted' }, reason) : null,
    h('p', {}, h('a', { class: 'button', href: 'login', id: 'signin' }, 'Sign in'))));
  me = null;
}

const tabs = [['', 'Devices'], ['claim', 'Claim'], ['connectors', 'Data connectors'], ['people', 'Members & keys'],
  ['audit', 'Audit log'], ['data', 'Export & erasure'], ['fleet', 'Connectors & health']];

function projectTabs(p, current) {
  document.getElementById('tabs').replaceChildren(
    h('a', { href: '#/' }, 'Projects'),
    ...tabs.map(([path, label]) => h('a', { href: `#/p/${p}${path ? '/' + path : ''}`, 'aria-current': current === path ? 'page' : null }, label)));
}

const routes = [
  [/^#?\/?$/, projects],
  [/^#\/p\/([\w-]+)$/, devices],
  [/^#\/p\/([\w-]+)\/d\/([\w-]+)$/, device],
  [/^#\/p\/([\w-]+)\/claim$/, claim],
  [/^#\/p\/([\w-]+)\/connectors$/, connectors],
  [/^#\/p\/([\w-]+)\/people$/, people],
  [/^#\/p\/([\w-]+)\/audit$/, audit],
  [/^#\/p\/([\w-]+)\/data$/, dataRights],
  [/^#\/p\/([\w-]+)\/fleet$/, fleet],
];

async function render(moved = false) {
  for (const c of cleanup) c();
  cleanup = [];
  if (!me) {
    try { me = await call('GET', '/session', undefined, { base: '.' }); } catch { return; }
    document.getElementById('who').textContent = me.email;
    document.getElementById('signout').hidden = false;
  }
  for (const [re, show] of routes) {
    const m = location.hash.match(re);
    if (m) {
      page(h('p', {}, 'Loading…'));
      try {
        await show(...m.slice(1));
      } catch (e) {
        if (e.code === 401) return;
        page(h('h1', {}, e.code === 403 || e.code === 404 ? 'Not available' : 'Something went wrong'),
          h('p', { class: 'bad', id: 'error' }, e.message));
      }
      document.body.dataset.page = show.name;
      if (moved) main().focus(); // keyboard and screen-reader users land on the new page
      return;
    }
  }
  page(h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '#/' }, 'Your projects')));
}

// ---- Projects ----

async function projects() {
  document.getElementById('tabs').replaceChildren();
  const list = await all('/projects', 'projects');
  page(h('h1', {}, 'Your projects'),
    list.length === 0
      ? h('p', { id: 'no-projects' }, 'You are not a member of any project yet. Ask an administrator of your organization to add you.')
      : table('projects', ['Project', 'Organization', 'Sensors', 'Cloud connectors'], list.map((p) => h('tr', {},
        h('td', {}, h('a', { href: `#/p/${id(p.name)}` }, p.displayName || id(p.name))),
        h('td', {}, p.organizationDisplayName), h('td', {}, p.sensorCount), h('td', {}, p.cloudConnectorCount)))));
}

// ---- Devices, live ----

async function devices(p) {
  projectTabs(p, '');
  const [proj, list, health] = await Promise.all([get(`/projects/${p}`), all(`/projects/${p}/devices`, 'devices'), get(`/projects/${p}/health`).catch(() => null)]);
  const anomalies = {};
  for (const d of (health && health.openAnomalies && health.openAnomalies.devices) || []) anomalies[id(d.name)] = d.anomalies;
  const rows = new Map();
  const byId = new Map(list.map((d) => [id(d.name), d]));
  const row = (d) => {
    const dev = id(d.name), r = d.reported || {};
    const net = r.networkStatus, bat = r.batteryStatus, an = anomalies[dev] || [];
    // data-label heads each cell where a phone shows a row as a card.
    return h('tr', { 'data-device': dev },
      h('td', { 'data-label': 'Device' }, h('a', { href: `#/p/${p}/d/${dev}` }, d.labels && d.labels.name ? d.labels.name : dev)),
      h('td', { 'data-label': 'Type' }, d.type),
      h('td', { class: 'labels', 'data-label': 'Labels' }, Object.entries(d.labels || {}).map(([k, v]) => h('span', { class: 'label' }, `${k}=${v}`))),
      h('td', { class: 'value', 'data-label': 'Latest value' }, summary(primary[d.type], r[primary[d.type]])),
      h('td', { class: 'signal', 'data-label': 'Signal' }, net ? `${net.signalStrength} %` : '—'),
      h('td', { class: 'battery', 'data-label': 'Battery' }, bat ? `${bat.percentage} %` : '—'),
      h('td', { class: 'seen', 'data-label': 'Last seen' }, when(lastSeen(r))),
      h('td', { class: 'anomalies', 'data-label': 'Open anomalies' }, an.length ? an.map((a) => h('span', { class: 'label bad' }, a.kind)) : '—'));
  };
  const body = list.map((d) => { const tr = row(d); rows.set(id(d.name), tr); return tr; });
  const live = h('p', { id: 'live', class: 'muted' }, 'Connecting to live updates…');
  page(h('h1', {}, proj.displayName || p), live,
    table('devices', ['Device', 'Type', 'Labels', 'Latest value', 'Signal', 'Battery', 'Last seen', 'Open anomalies'], body));
  const es = new EventSource(`${API}/projects/${p}/devices:stream?ping_interval=10s`);
  cleanup.push(() => es.close());
  es.onopen = () => { live.textContent = 'Live: values update as sensors report.'; };
  es.onerror = () => { live.textContent = 'Reconnecting to live updates…'; };
  es.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (f.error) { live.textContent = `Live updates ended: ${f.error.message}`; es.close(); return; }
    if (!f.result) return;
    const e = f.result.event, dev = id(e.targetName), d = byId.get(dev);
    if (!d || e.eventType === 'ping') return;
    d.reported = d.reported || {};
    if (e.eventType === 'labelsChanged') return;
    d.reported[e.eventType] = e.data[e.eventType];
    const tr = row(d);
    tr.classList.add('updated');
    rows.get(dev).replaceWith(tr);
    rows.set(dev, tr);
  };
}

// ---- One device ----

const ranges = [['1h', 3600e3], ['24h', 86400e3], ['7d', 7 * 86400e3]];

async function device(p, dev) {
  projectTabs(p, '');
  const d = await get(`/projects/${p}/devices/${dev}`);
  const types = Object.keys(numeric).filter((t) => d.reported && d.reported[t]);
  const typeSel = h('select', { id: 'chart-type' }, types.map((t) => h('option', { value: t }, t)));
  const rangeSel = h('select', { id: 'chart-range' }, ranges.map(([l, ms]) => h('option', { value: ms }, `Last ${l}`)), h('option', { value: 'custom' }, 'From … to …'));
  const local = (ms) => new Date(ms - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  const fromIn = h('input', { type: 'datetime-local', id: 'chart-from', value: local(Date.now() - 86400e3) });
  const toIn = h('input', { type: 'datetime-local', id: 'chart-to', value: local(Date.now()) });
  const custom = h('div', { class: 'row', hidden: true }, field('From', fromIn), field('To', toIn));
  const chartBox = h('div', { id: 'chart' });
  const draw = guard(async () => {
    if (!typeSel.value) { chartBox.replaceChildren(h('p', { class: 'muted' }, 'This device has reported no values to chart yet.')); return; }
    custom.hidden = rangeSel.value !== 'custom';
    let to = Date.now(), from = to - Number(rangeSel.value);
    if (!custom.hidden) { from = new Date(fromIn.value).getTime(); to = new Date(toIn.value).getTime(); }
    if (!(from < to)) { say('Choose a start before the end.', true); return; }
    const t = typeSel.value;
    const evs = await all(`/projects/${p}/devices/${dev}/events?eventTypes=${t}&startTime=${new Date(from).toISOString()}&endTime=${new Date(to).toISOString()}`, 'events', 5000);
    const pts = evs.map((e) => ({ t: Date.parse(e.timestamp), v: numeric[t][0](e.data[t]) })).filter((x) => Number.isFinite(x.v)).sort((a, b) => a.t - b.t);
    chartBox.replaceChildren(lineChart(pts, { from, to, unit: numeric[t][1], title: `${t} of ${dev}` }));
  });
  for (const e of [typeSel, rangeSel, fromIn, toIn]) e.addEventListener('change', draw);

  page(
    h('h1', {}, `${d.type} ${dev}`),
    h('p', {}, h('a', { href: `#/p/${p}` }, '← All devices')),
    h('section', { 'aria-labelledby': 'labels-h' }, h('h2', { id: 'labels-h' }, 'Labels'), labelsEditor(p, dev, d.labels || {})),
    h('section', { 'aria-labelledby': 'history-h' }, h('h2', { id: 'history-h' }, 'History'),
      h('div', { class: 'row' }, field('Value', typeSel), field('Range', rangeSel)), custom, chartBox),
    h('section', { 'aria-labelledby': 'config-h', id: 'configuration' }, h('h2', { id: 'config-h' }, 'Configuration'), h('p', {}, 'Loading…')),
    h('section', { 'aria-labelledby': 'events-h' }, h('h2', { id: 'events-h' }, 'Latest events'), h('div', { id: 'events' })));
  await Promise.all([draw(), configuration(p, dev, d), latestEvents(p, dev)]);
}

function labelsEditor(p, dev, labels) {
  const box = h('div', { id: 'labels' });
  const show = (ls) => box.replaceChildren(
    h('ul', {}, Object.entries(ls).map(([k, v]) => h('li', {}, h('span', { class: 'label' }, `${k}=${v}`), ' ',
      h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove label ${k}`,
        onclick: guard(async () => { await call('DELETE', `/projects/${p}/devices/${dev}/labels/${encodeURIComponent(k)}`); delete ls[k]; show(ls); say(`Label ${k} removed`); }) }, 'Remove')))),
    addForm(ls));
  const addForm = (ls) => {
    const k = h('input', { name: 'key', required: true }), v = h('input', { name: 'value' });
    return h('form', { class: 'inline', onsubmit: guard(async () => {
      await call('POST', `/projects/${p}/devices/${dev}/labels`, { key: k.value, value: v.value });
      ls[k.value] = v.value; show(ls); say(`Label ${k.value} added`);
    }) }, field('Key', k), field('Value', v), h('button', {}, 'Add label'));
  };
  show({ ...labels });
  return box;
}

async function configuration(p, dev, d) {
  const box = document.getElementById('configuration');
  if (d.type === 'ccon') { box.replaceChildren(h('h2', {}, 'Configuration'), h('p', { class: 'muted' }, 'Cloud connectors are not configured here.')); return; }
  let cfg;
  try { cfg = await get(`/projects/${p}/devices/${dev}/configuration`); } catch (e) {
    box.replaceChildren(h('h2', { id: 'config-h' }, 'Configuration'), h('p', { class: 'muted' }, e.message)); return;
  }
  const fields = [['sampleIntervalSeconds', 'Sample interval (s)'], ['reportIntervalSeconds', 'Report interval (s)'], ['batchSize', 'Readings per packet'], ['txPowerDbm', 'Radio power (dBm)']];
  const inputs = Object.fromEntries(fields.map(([k]) => [k, h('input', { type: 'number', name: k, value: cfg.desired[k] ?? '', inputmode: 'numeric' })]));
  const state = h('p', { id: 'config-status' }, `Status: ${cfg.status}`, cfg.rejectReason ? ` (${cfg.rejectReason})` : '', ` — desired version ${cfg.desiredVersion}, reported version ${cfg.reportedVersion}`);
  box.replaceChildren(h('h2', { id: 'config-h' }, 'Configuration'),
    table('config', ['Setting', 'Desired', 'Reported'], fields.map(([k, l]) => h('tr', {}, h('th', { scope: 'row' }, l), h('td', {}, cfg.desired[k] ?? '—'), h('td', { 'data-reported': k }, cfg.reported[k] ?? '—')))),
    state,
    h('form', { class: 'inline', id: 'config-form', onsubmit: guard(async () => {
      const desired = {};
      for (const [k, input] of Object.entries(inputs)) if (input.value !== '') desired[k] = Number(input.value);
      await call('PATCH', `/projects/${p}/devices/${dev}/configuration`, { desired }, { headers: { 'If-Match': cfg.etag } });
      say('Configuration sent: the sensor applies it when it next reports.');
      await configuration(p, dev, d);
      pollConfig(p, dev, d);
    }) }, fields.map(([k, l]) => field(l, inputs[k])), h('button', {}, 'Save configuration')));
}

// pollConfig re-reads the configuration until the sensor confirms or
// refuses the change, or the page is left.
function pollConfig(p, dev, d) {
  const timer = setInterval(guard(async () => {
    const c = await get(`/projects/${p}/devices/${dev}/configuration`);
    if (c.status !== 'REQUESTED' && c.status !== 'SENT' && c.status !== 'PENDING') { clearInterval(timer); await configuration(p, dev, d); }
  }), 3000);
  cleanup.push(() => clearInterval(timer));
}

async function latestEvents(p, dev) {
  const evs = (await get(`/projects/${p}/devices/${dev}/events?pageSize=50`)).events || [];
  document.getElementById('events').replaceChildren(table('events', ['Time', 'Type', 'Data'], evs.map((e) =>
    h('tr', {}, h('td', {}, when(e.timestamp)), h('td', {}, e.eventType), h('td', {}, summary(e.eventType, e.data[e.eventType]))))));
}

// ---- Claiming ----

async function claim(p) {
  projectTabs(p, 'claim');
  const input = h('input', { id: 'claim-id', name: 'identifier', required: true, autocomplete: 'off' });
  const out = h('div', { id: 'claim-result' });
  page(h('h1', {}, 'Claim sensors'),
    h('p', {}, 'Enter the id printed on a sensor or on a kit. You see what it is before you claim it.'),
    h('form', { class: 'inline', onsubmit: guard(async () => {
      const ident = input.value.trim();
      const info = await get(`/claimInfo?identifier=${encodeURIComponent(ident)}`);
      const body = info.type === 'KIT' ? { kitIds: [ident] } : { deviceIds: [ident] };
      const dry = await call('POST', `/projects/${p}/devices:claim?dryRun=true`, body);
      out.replaceChildren(h('div', { class: 'card' }, h('h2', {}, 'If you claim it'), claimSummary(dry),
        dry.claimedDevices.length ? h('button', { type: 'button', id: 'claim-confirm', onclick: guard(async () => {
          const res = await call('POST', `/projects/${p}/devices:claim`, body);
          out.replaceChildren(h('div', { class: 'card' }, h('h2', {}, 'Claimed'), claimSummary(res)));
          say(`${res.claimedDevices.length} device(s) claimed`);
        }) }, `Claim ${dry.claimedDevices.length} device(s)`) : null));
    }) }, field('Device or kit id', input), h('button', {}, 'Check')), out);
}

function claimSummary(r) {
  const errs = [...(r.claimErrors.devices || []), ...(r.claimErrors.kits || [])];
  return h('div', {},
    h('ul', { class: 'claimed' }, r.claimedDevices.map((d) => h('li', {}, `${d.deviceType} ${d.deviceId} (${d.productNumber})`))),
    errs.length ? h('ul', { class: 'bad' }, errs.map((e) => h('li', {}, `${e.deviceId || e.kitId}: ${e.message}`))) : null);
}

// ---- Data connectors ----

async function connectors(p) {
  projectTabs(p, 'connectors');
  const list = await all(`/projects/${p}/dataconnectors`, 'dataConnectors');
  const name = h('input', { name: 'displayName', required: true }), url = h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://' });
  const events = h('input', { name: 'events', placeholder: 'all' });
  const created = h('div', { id: 'created' });
  page(h('h1', {}, 'Data connectors'),
    table('connectors', ['Name', 'URL', 'Status', 'Events', ''], list.map((c) => h('tr', { 'data-connector': id(c.name) },
      h('td', {}, c.displayName), h('td', {}, c.httpConfig.url), h('td', {}, c.status), h('td', {}, (c.events || []).join(', ') || 'all'),
      h('td', {}, connectorActions(p, c))))),
    h('h2', {}, 'New data connector'),
    h('form', { class: 'inline', id: 'connector-form', onsubmit: guard(async () => {
      const ev = events.value.split(',').map((s) => s.trim()).filter(Boolean);
      const c = await call('POST', `/projects/${p}/dataconnectors`, { displayName: name.value, events: ev, httpConfig: { url: url.value } });
      await connectors(p);
      document.getElementById('created').replaceChildren(h('div', { class: 'card' }, h('p', {}, `Created ${c.displayName}. Its signature secret is shown only now:`),
        h('p', { class: 'secret', id: 'signature-secret' }, c.httpConfig.signatureSecret)));
    }) }, field('Name', name), field('URL', url), field('Event types (comma-separated)', events), h('button', {}, 'Create')),
    created, h('div', { id: 'metrics' }));
}

function connectorActions(p, c) {
  const path = `/${c.name}`;
  const act = (label, fn, cls = 'secondary') => h('button', { type: 'button', class: cls, onclick: guard(async () => { await fn(); await connectors(p); say(`${label}: done`); }) }, label);
  return h('div', { class: 'row' },
    h('button', { type: 'button', class: 'secondary', onclick: guard(() => showMetrics(c)) }, 'Metrics'),
    h('button', { type: 'button', class: 'secondary', onclick: () => editConnector(p, c) }, 'Edit'),
    c.status === 'ACTIVE'
      ? act('Disable', () => call('PATCH', path, { status: 'USER_DISABLED' }))
      : act('Enable with backfill', () => call('PATCH', `${path}?backfill=true`, { status: 'ACTIVE' })),
    c.status === 'ACTIVE' ? act('Sync', () => call('POST', `${path}:sync`, {})) : null,
    act('Delete', async () => { if (confirm(`Delete ${c.displayName}?`)) await call('DELETE', path); }, 'danger'));
}

function editConnector(p, c) {
  const name = h('input', { name: 'displayName', required: true, value: c.displayName });
  const url = h('input', { name: 'url', type: 'url', required: true, value: c.httpConfig.url });
  const events = h('input', { name: 'events', value: (c.events || []).join(', '), placeholder: 'all' });
  const labels = h('input', { name: 'labels', value: (c.labels || []).join(', '), placeholder: 'any' });
  document.getElementById('metrics').replaceChildren(h('h2', {}, `Edit ${c.displayName}`),
    h('form', { class: 'inline', id: 'connector-edit', onsubmit: guard(async () => {
      const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
      await call('PATCH', `/${c.name}`, { displayName: name.value, events: list(events.value), labels: list(labels.value), httpConfig: { url: url.value } });
      await connectors(p);
      say(`${name.value} saved`);
    }) }, field('Name', name), field('URL', url), field('Event types (comma-separated)', events), field('Labels (comma-separated)', labels),
    h('button', {}, 'Save'), h('button', { type: 'button', class: 'secondary', onclick: () => document.getElementById('metrics').replaceChildren() }, 'Cancel')));
  name.focus();
}

async function showMetrics(c) {
  const m = (await get(`/${c.name}:metrics`)).metrics;
  document.getElementById('metrics').replaceChildren(h('h2', {}, `Deliveries of ${c.displayName}, last 3 hours`),
    h('p', { id: 'metrics-text' }, `${m.successCount} delivered, ${m.errorCount} failed, 99th percentile latency ${m.latency99p}`),
    barChart([{ label: 'delivered', value: m.successCount }, { label: 'failed', value: m.errorCount, cls: 'bad' }], { title: 'Deliveries' }));
}

// ---- Members and service-account keys ----

const roleNames = ['roles/project.user', 'roles/project.developer', 'roles/project.admin'];

async function people(p) {
  projectTabs(p, 'people');
  const proj = await get(`/projects/${p}`);
  // The organization's admins act in every project; only they may list
  // themselves, so for others the section is left out.
  const [members, accounts, admins] = await Promise.all([all(`/projects/${p}/members`, 'members'), all(`/projects/${p}/serviceaccounts`, 'serviceAccounts'),
    all(`/${proj.organization}/members`, 'members').catch(() => null)]);
  const email = h('input', { name: 'email', type: 'email', required: true, autocomplete: 'off' });
  const role = h('select', { name: 'role' }, roleNames.map((r) => h('option', { value: r }, r)));
  const saName = h('input', { name: 'displayName', required: true });
  page(h('h1', {}, 'Members and service accounts'),
    admins ? h('section', { 'aria-labelledby': 'admins-h' }, h('h2', { id: 'admins-h' }, `Administrators of ${proj.organizationDisplayName}`),
      table('admins', ['Member', 'Kind'], admins.map((m) => h('tr', {}, h('td', {}, m.email), h('td', {}, m.accountType === 'USER' ? 'person' : 'service account'))))) : null,
    h('h2', {}, 'Project members'),
    table('members', ['Member', 'Kind', 'Role', ''], members.map((m) => {
      const sel = h('select', { 'aria-label': `Role of ${m.email}`, onchange: guard(async (ev) => { await call('PATCH', `/${m.name}`, { roles: [ev.target.value] }); say('Role changed'); }) },
        roleNames.map((r) => h('option', { value: r, selected: m.roles.includes(r) }, r)));
      return h('tr', {}, h('td', {}, m.email), h('td', {}, m.accountType === 'USER' ? 'person' : 'service account'), h('td', {}, sel),
        h('td', {}, h('button', { type: 'button', class: 'danger', onclick: guard(async () => { if (confirm(`Remove ${m.email}?`)) { await call('DELETE', `/${m.name}`); await people(p); } }) }, 'Remove')));
    })),
    h('h2', {}, 'Add a member'),
    h('form', { class: 'inline', onsubmit: guard(async () => { await call('POST', `/projects/${p}/members`, { email: email.value, roles: [role.value] }); await people(p); say('Member added'); }) },
      field('Email of a person or service account', email), field('Role', role), h('button', {}, 'Add')),
    h('h2', {}, 'Service accounts'),
    table('accounts', ['Name', 'Email', ''], accounts.map((a) => h('tr', {}, h('td', {}, a.displayName), h('td', {}, a.email),
      h('td', {}, h('div', { class: 'row' }, h('button', { type: 'button', class: 'secondary', onclick: guard(() => keys(p, a)) }, 'Keys'),
        h('button', { type: 'button', class: 'secondary', onclick: guard(() => newKey(a)) }, 'New key')))))),
    h('form', { class: 'inline', onsubmit: guard(async () => { await call('POST', `/projects/${p}/serviceaccounts`, { displayName: saName.value }); await people(p); }) },
      field('New service account name', saName), h('button', {}, 'Create')),
    h('div', { id: 'new-key' }));
}

async function keys(p, a) {
  const list = await all(`/${a.name}/keys`, 'keys');
  document.getElementById('new-key').replaceChildren(h('div', { class: 'card' }, h('h2', {}, `Keys of ${a.email}`),
    list.length ? table('keys', ['Key id', 'Created', ''], list.map((k) => h('tr', {}, h('td', {}, k.id), h('td', {}, when(k.createTime)),
      h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Delete key ${k.id}`, onclick: guard(async () => {
        if (confirm(`Delete key ${k.id}? Programs using it stop working.`)) { await call('DELETE', `/${k.name}`); await keys(p, a); say('Key deleted'); }
      }) }, 'Delete'))))) : h('p', {}, 'No keys.')));
}

async function newKey(a) {
  const creds = await call('POST', `/${a.name}/keys:createCredentialsFile`, {});
  const file = new Blob([JSON.stringify(creds, null, 2)], { type: 'application/json' });
  const href = URL.createObjectURL(file);
  cleanup.push(() => URL.revokeObjectURL(href));
  document.getElementById('new-key').replaceChildren(h('div', { class: 'card' },
    h('p', {}, `A new key of ${a.email}. Its secret is shown only now: store it where your program reads it.`),
    h('p', { class: 'secret', id: 'key-secret' }, creds.secret),
    h('a', { class: 'button', href, download: 'sealedsense-credentials.json' }, 'Download credentials file')));
}

// ---- Audit log ----

async function audit(p) {
  projectTabs(p, 'audit');
  let entries = [], token = '';
  const actor = h('input', { name: 'actor', placeholder: 'email' }), action = h('input', { name: 'action', placeholder: 'e.g. POST' });
  const outcome = h('select', { name: 'outcome' }, [['', 'any'], ['ok', 'succeeded'], ['refused', 'refused (4xx)'], ['failed', 'failed (5xx)']].map(([v, l]) => h('option', { value: v }, l)));
  const body = h('tbody');
  const show = () => {
    const a = actor.value.toLowerCase(), ac = action.value.toLowerCase(), o = outcome.value;
    body.replaceChildren(...entries.filter((e) => (!a || e.actor.toLowerCase().includes(a)) && (!ac || e.action.toLowerCase().includes(ac) || e.resource.toLowerCase().includes(ac)) &&
      (!o || (o === 'ok' ? e.code < 400 : o === 'refused' ? e.code >= 400 && e.code < 500 : e.code >= 500)))
      .map((e) => h('tr', {}, h('td', {}, when(e.time)), h('td', {}, e.actorType === 'USER' ? 'person' : 'service account'), h('td', {}, e.actor),
        h('td', {}, e.action), h('td', {}, e.resource), h('td', {}, e.code), h('td', {}, e.reason || ''))));
  };
  const more = h('button', { type: 'button', class: 'secondary', onclick: guard(async () => { await load(); }) }, 'Load older entries');
  const load = async () => {
    const pg = await get(`/projects/${p}/auditLog?pageSize=200${token ? '&pageToken=' + encodeURIComponent(token) : ''}`);
    entries = entries.concat(pg.entries || []);
    token = pg.nextPageToken;
    more.hidden = !token;
    show();
  };
  for (const f of [actor, action, outcome]) f.addEventListener('input', show);
  page(h('h1', {}, 'Audit log'), h('div', { class: 'row' }, field('Who', actor), field('Action or resource', action), field('Outcome', outcome)),
    h('div', { class: 'table-wrap' }, h('table', { class: 'audit' }, h('thead', {}, h('tr', {}, ['Time', 'Kind', 'Who', 'Action', 'Resource', 'Code', 'Details'].map((c) => h('th', { scope: 'col' }, c)))), body)), more);
  await load();
}

// ---- Export and erasure ----

async function dataRights(p) {
  projectTabs(p, 'data');
  const exports = (await get(`/projects/${p}/exports`)).exports || [];
  const confirmInput = h('input', { name: 'confirm', autocomplete: 'off', placeholder: `projects/${p}` });
  const progress = h('div', { id: 'erasure' });
  page(h('h1', {}, 'Export and erasure'),
    h('h2', {}, 'Exports'),
    h('p', {}, h('button', { type: 'button', id: 'export-start', onclick: guard(async () => { await call('POST', `/projects/${p}:export`, {}); say('Export started'); await dataRights(p); }) }, 'Export all data')),
    table('exports', ['Started', 'State', 'Files'], exports.map((e) => h('tr', {}, h('td', {}, when(e.createTime)), h('td', {}, e.state),
      h('td', {}, e.state === 'DONE' ? h('button', { type: 'button', class: 'secondary', onclick: guard(() => exportFiles(e)) }, 'Download links') : (e.error || '—'))))),
    h('div', { id: 'export-files' }),
    h('h2', {}, 'Erase this project'),
    h('p', {}, 'Erasure deletes every event, data connector, service account, member and the audit log; the sensors return to the unclaimed inventory. It cannot be undone.'),
    h('form', { class: 'inline', onsubmit: guard(async () => {
      const er = await call('POST', `/projects/${p}:erase`, { confirmProject: confirmInput.value });
      watchErasure(p, er, progress);
    }) }, field(`Type projects/${p} to confirm`, confirmInput), h('button', { class: 'danger' }, 'Erase project')), progress);
  const timer = setInterval(guard(async () => {
    const now = (await get(`/projects/${p}/exports`)).exports || [];
    if (now.some((e, i) => !exports[i] || e.state !== exports[i].state)) { clearInterval(timer); await dataRights(p); }
  }), 5000);
  cleanup.push(() => clearInterval(timer));
}

async function exportFiles(e) {
  const x = await get(`/${e.name}`);
  document.getElementById('export-files').replaceChildren(h('div', { class: 'card' }, h('p', {}, `Links valid until ${when(x.urlExpireTime)}`),
    h('ul', {}, (x.files || []).map((f) => h('li', {}, h('a', { href: f.url }, `${f.kind} (${f.count} records)`))),
      x.manifestUrl ? h('li', {}, h('a', { href: x.manifestUrl }, 'manifest.json')) : null)));
}

function watchErasure(p, er, box) {
  const timer = setInterval(guard(async () => {
    const x = await get(`/${er.name}`).catch((e) => ({ state: e.code === 404 ? 'DONE' : 'UNKNOWN' }));
    box.replaceChildren(h('p', {}, `Erasure: ${x.state}`, x.summary ? ` — ${x.summary}` : ''));
    if (x.state === 'DONE' || x.state === 'FAILED') clearInterval(timer);
  }), 2000);
  cleanup.push(() => clearInterval(timer));
}

// ---- Cloud connectors and fleet health ----

async function fleet(p) {
  projectTabs(p, 'fleet');
  const [health, ccons] = await Promise.all([get(`/projects/${p}/health`), all(`/projects/${p}/devices?device_types=ccon`, 'devices')]);
  const by = health.devices.byState || {};
  page(h('h1', {}, 'Connectors and fleet health'),
    h('p', { id: 'health-summary' }, `${health.devices.total} sensors; cloud connectors: ${health.connectors.online} online, ${health.connectors.offline} offline. Updated ${when(health.updateTime)}.`),
    barChart(Object.entries(by).map(([s, n]) => ({ label: s, value: n, cls: s === 'HEALTHY' || s === 'OK' ? 'ok' : 'bad' })), { title: 'Sensors by state' }),
    h('h2', {}, 'Cloud connectors'),
    table('ccons', ['Connector', 'Connection', 'Last seen'], ccons.map((c) => h('tr', {}, h('td', {}, h('a', { href: `#/p/${p}/d/${id(c.name)}` }, id(c.name))),
      h('td', {}, summary('connectionStatus', c.reported && c.reported.connectionStatus)), h('td', {}, when(lastSeen(c.reported)))))),
    h('h2', {}, 'Open anomalies'),
    table('anomalies', ['Device', 'Kind', 'Severity', 'Since'], (health.openAnomalies.devices || []).flatMap((d) => d.anomalies.map((a) =>
      h('tr', {}, h('td', {}, h('a', { href: `#/p/${p}/d/${id(d.name)}` }, id(d.name))), h('td', {}, a.kind), h('td', {}, a.severity), h('td', {}, when(a.startTime)))))));
}

// ---- Start ----

document.getElementById('signout').addEventListener('click', guard(async () => {
  await call('POST', '/logout', undefined, { base: '.' });
  showSignIn('You signed out.');
}));
// The skip link moves focus to the page; as a plain #main link it would
// change the route.
document.querySelector('.skip').addEventListener('click', (e) => { e.preventDefault(); main().focus(); });
window.addEventListener('hashchange', () => render(true));
render();
