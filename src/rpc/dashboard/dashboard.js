// The raftkv dashboard: polls every node's /status (docs/api.md) once a second and draws the
// cluster from what they say. The node that served the page tells where the others serve
// (metrics_addresses); a node that does not answer within the poll is shown down.
'use strict';

const POLL_MS = 1000;
const HISTORY = 300;  // chart points: five minutes at one a second

const state = {
  addresses: [],      // metrics address of each node, by id ('' when unknown)
  nodeAddresses: [],  // gRPC address of each node, by id
  nodes: new Map(),   // id -> {status, down, polledAt}
  previous: new Map(),  // id -> {requests, cumulative, at}: the last poll, for rates
  ops: [],            // [{at, value}]
  p99: [],
  events: new Map(),  // id -> [{at, text}] as that node last reported them
  leaseSeen: 1,       // the longest lease seen (ms), to scale the lease bars
};

// The URL of node `id`'s /status: this page's own node answers same-origin. A metrics address
// that listens on every interface (0.0.0.0, [::]) names only a port; the host is then the one in
// the node's gRPC address, and null (unknown) if that is a wildcard too.
function statusUrl(id) {
  if (id === state.selfId) return '/status';
  const split = address => {
    const colon = address.lastIndexOf(':');
    return [address.slice(0, colon), address.slice(colon + 1)];
  };
  const wildcard = host => host === '' || host === '0.0.0.0' || host === '[::]' || host === '::';
  let [host, port] = split(state.addresses[id]);
  if (wildcard(host)) host = split(state.nodeAddresses[id] || '')[0];
  if (wildcard(host)) return null;
  return `http://${host}:${port}/status`;
}

async function fetchStatus(url) {
  const response = await fetch(url, {cache: 'no-store', signal: AbortSignal.timeout(POLL_MS - 100)});
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

// The q-quantile of a histogram given as cumulative bucket counts, interpolated within its bucket
// as Prometheus' histogram_quantile does; null without observations.
function quantile(q, bounds, cumulative, count) {
  if (count <= 0) return null;
  const rank = q * count;
  for (let i = 0; i < bounds.length; i++) {
    if (cumulative[i] >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      const below = i === 0 ? 0 : cumulative[i - 1];
      const inBucket = cumulative[i] - below;
      return lower + (bounds[i] - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
    }
  }
  return bounds[bounds.length - 1];  // in +Inf: at least the last bound
}

async function poll() {
  const now = Date.now();
  await Promise.all(state.addresses.map(async (address, id) => {
    try {
      const url = address === '' ? null : statusUrl(id);
      if (url === null) return;
      const status = await fetchStatus(url);
      // A misconfigured address can lead to another node: never show its state as this one's.
      if (status.id !== id) throw new Error(`${url} answers as node ${status.id}`);
      state.nodes.set(id, {status, down: false, polledAt: now});
      state.events.set(id, status.events.map(e => ({at: now - e.age_ms, text: e.text})));
    } catch (error) {
      const last = state.nodes.get(id);
      state.nodes.set(id, {status: last ? last.status : null, down: true, polledAt: now,
                           error: String(error)});
    }
  }));
  sampleRates(now);
  render(now);
}

// Requests per second and p99 latency over the last poll, summed over the nodes that answered.
function sampleRates(now) {
  let ops = 0, seconds = 0, count = 0, bounds = null, cumulative = null;
  for (const [id, node] of state.nodes) {
    if (node.down || !node.status) { state.previous.delete(id); continue; }
    const s = node.status;
    const before = state.previous.get(id);
    state.previous.set(id, {requests: s.requests, cumulative: s.latency.cumulative,
                            count: s.latency.count, at: now});
    if (!before || s.requests < before.requests) continue;  // first poll, or a restart
    seconds = Math.max(seconds, (now - before.at) / 1000);
    ops += s.requests - before.requests;
    bounds = s.latency.bounds;
    cumulative = cumulative || new Array(bounds.length).fill(0);
    s.latency.cumulative.forEach((c, i) => { cumulative[i] += c - (before.cumulative[i] || 0); });
    count += s.latency.count - before.count;
  }
  if (seconds <= 0) return;
  const p99 = bounds ? quantile(0.99, bounds, cumulative, count) : null;
  state.ops.push({at: now, value: ops / seconds});
  state.p99.push({at: now, value: p99 === null ? null : p99 * 1000});
  for (const series of [state.ops, state.p99]) {
    while (series.length > HISTORY) series.shift();
  }
}

function text(tag, content, className) {
  const element = document.createElement(tag);
  element.textContent = content;
  if (className) element.className = className;
  return element;
}

function render(now) {
  // The leader: a node that says it leads, of the highest term among those that answered.
  let leader = null;
  for (const [id, node] of state.nodes) {
    const s = node.status;
    if (!node.down && s && s.role === 'leader' && (!leader || s.term > leader.term)) {
      leader = {id, term: s.term};
    }
  }
  const leaderView = leader ? state.nodes.get(leader.id).status : null;
  const summary = document.getElementById('leader');
  summary.dataset.leader = leader ? String(leader.id) : '-1';
  summary.textContent = leader ? `leader: node ${leader.id} (term ${leader.term})`
                               : 'no leader: an election is under way, or a majority is down';
  document.getElementById('updated').textContent =
      `updated ${new Date(now).toLocaleTimeString()}`;

  const body = document.querySelector('#nodes tbody');
  body.replaceChildren();
  state.addresses.forEach((address, id) => {
    const node = state.nodes.get(id);
    const row = document.createElement('tr');
    row.id = `node-${id}`;
    const s = node && node.status;
    const down = !node || node.down;
    row.dataset.role = down ? 'down' : s.role;
    row.className = down ? 'down' : s.role;
    const peer = leaderView && leaderView.peers.find(p => p.id === id);
    const lag = leader && leader.id === id ? 0 : (peer ? peer.lag : null);
    const lease = !down && s.role === 'leader' ? s.lease_remaining_ms : 0;
    state.leaseSeen = Math.max(state.leaseSeen, lease);
    const leaseCell = document.createElement('td');
    const bar = document.createElement('span');
    bar.className = 'lease';
    const fill = document.createElement('i');
    fill.style.width = `${Math.round(100 * lease / state.leaseSeen)}%`;
    bar.append(fill);
    leaseCell.append(bar, `${lease} ms`);
    row.append(text('td', String(id)), text('td', address || '(unknown)'),
               text('td', down ? 'down' : s.role, 'role'),
               text('td', s ? String(s.term) : '–'),
               text('td', s && s.leader >= 0 ? String(s.leader) : '–'), leaseCell,
               text('td', s ? String(s.commit_index) : '–'),
               text('td', s ? String(s.last_applied) : '–'),
               text('td', lag === null ? '–' : String(lag)),
               text('td', down ? (node ? 'no answer'
                                      : (address === '' || statusUrl(id) === null
                                             ? 'metrics address unknown' : 'not polled yet'))
                               : (s.healthy ? 'ok' : s.health)));
    if (down && node) row.title = node.error;
    body.append(row);
  });
  const unknown = state.addresses.filter((a, id) => a === '' || statusUrl(id) === null).length;
  document.getElementById('note').textContent = unknown === 0 ? '' :
      `${unknown} node(s) cannot be polled: list every node's metrics address in [metrics] ` +
      'LISTEN, with a host the browser can reach.';

  drawChart(document.getElementById('ops'), state.ops, now, v => v.toFixed(0));
  drawChart(document.getElementById('p99'), state.p99, now, v => v.toFixed(2));

  const events = [];
  for (const [id, list] of state.events) list.forEach(e => events.push({id, ...e}));
  events.sort((a, b) => b.at - a.at);
  const list = document.getElementById('events');
  list.replaceChildren(...events.slice(0, 40).map(e => {
    const item = document.createElement('li');
    item.append(text('time', new Date(e.at).toLocaleTimeString()), `node ${e.id}: ${e.text}`);
    return item;
  }));
}

// A line over the last HISTORY seconds, scaled to its own maximum, drawn on the canvas.
function drawChart(canvas, series, now, format) {
  const context = canvas.getContext('2d');
  const {width, height} = canvas;
  context.clearRect(0, 0, width, height);
  const values = series.filter(p => p.value !== null).map(p => p.value);
  const top = Math.max(1e-9, ...values) * 1.1;
  context.strokeStyle = '#d9dde5';
  context.fillStyle = '#6b7385';
  context.font = '11px system-ui, sans-serif';
  for (const fraction of [0, 0.5, 1]) {
    const y = height - 16 - fraction * (height - 28);
    context.beginPath();
    context.moveTo(40, y);
    context.lineTo(width, y);
    context.stroke();
    context.fillText(format(top * fraction), 2, y + 4);
  }
  context.fillText('-5 min', 40, height - 2);
  context.fillText('now', width - 24, height - 2);
  context.strokeStyle = '#2156a5';
  context.lineWidth = 2;
  context.beginPath();
  let drawing = false;
  for (const point of series) {
    const x = 40 + (width - 44) * (1 - (now - point.at) / (HISTORY * 1000));
    if (point.value === null) { drawing = false; continue; }
    const y = height - 16 - (point.value / top) * (height - 28);
    if (drawing) context.lineTo(x, y); else context.moveTo(x, y);
    drawing = true;
  }
  context.stroke();
}

async function start() {
  try {
    const self = await fetchStatus('/status');
    state.selfId = self.id;
    state.addresses = self.metrics_addresses;
    state.nodeAddresses = self.addresses || [];
  } catch (error) {
    document.getElementById('leader').textContent = `this node does not answer: ${error}`;
    setTimeout(start, POLL_MS);
    return;
  }
  const tick = async () => {
    const began = Date.now();
    try {
      await poll();
    } catch (error) {
      // A page that stops polling would show a frozen cluster as live: say it, and go on.
      document.getElementById('updated').textContent = `drawing failed: ${error}`;
    } finally {
      setTimeout(tick, Math.max(0, POLL_MS - (Date.now() - began)));
    }
  };
  tick();
}

start();
