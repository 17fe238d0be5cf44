// api.js: the JSON API from the page: bearer token, errors in the API's own words, uploads
// with progress, and the job event stream (Server-Sent Events read with fetch, so a reconnect
// can send Last-Event-ID itself and nothing is lost or seen twice).

const TOKEN_KEY = 'mkdseg.token';

// A model's name as every client sees it (the MONAI Label info/ list too): its name, else model-<id>.
export function modelName(m) { return m.name || `model-${m.id}`; }

export function token() { return localStorage.getItem(TOKEN_KEY) || ''; }
export function setToken(t) { if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY); }

// An API error: status, code, message and field exactly as the server sent them.
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || '';
    this.field = e.field || null;
  }
}

const listeners = new Set();
// fn(err) is called for every 401/403 (the page asks for a token then).
export function onAuthError(fn) { listeners.add(fn); }

function authHeaders(h = {}) {
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function parse(res) {
  const ct = res.headers.get('Content-Type') || '';
  const body = ct.includes('application/json') ? await res.json() : null;
  if (!res.ok) {
    const err = new ApiError(res.status, body);
    if (res.status === 401 || res.status === 403) listeners.forEach((fn) => fn(err));
    throw err;
  }
  return body;
}

// JSON request; body (an object) is sent as JSON. Resolves to the answer's JSON.
export async function api(method, path, body) {
  const h = authHeaders({ Accept: 'application/json' });
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  return parse(res);
}

// Multipart upload with progress: fields {name: File|string}; onProgress(fraction, phase) with
// phase 'upload' while the body is sent, then 'server' until the answer arrives.
export function upload(path, fields, onProgress) {
  return new Promise((resolve, reject) => {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null && v !== '') fd.append(k, v);
    const x = new XMLHttpRequest();
    x.open('POST', path);
    x.setRequestHeader('Accept', 'application/json');
    const t = token();
    if (t) x.setRequestHeader('Authorization', `Bearer ${t}`);
    x.upload.onprogress = (e) => onProgress && e.lengthComputable && onProgress(e.loaded / e.total, 'upload');
    x.upload.onload = () => onProgress && onProgress(1, 'server');
    x.onerror = () => reject(new ApiError(0, { error: { message: 'the connection to the server failed' } }));
    x.onload = () => {
      let body = null;
      try { body = JSON.parse(x.responseText); } catch { body = null; }
      if (x.status >= 200 && x.status < 300) return resolve(body);
      const err = new ApiError(x.status, body);
      if (x.status === 401 || x.status === 403) listeners.forEach((fn) => fn(err));
      reject(err);
    };
    x.send(fd);
  });
}

// Parses SSE text; returns [events, rest] (rest: an incomplete trailing block).
export function parseSSE(text) {
  const blocks = text.split(/\r?\n\r?\n/);
  const rest = blocks.pop();
  const events = [];
  for (const b of blocks) {
    const ev = { id: null, event: 'message', data: '' };
    let has = false;
    for (const line of b.split(/\r?\n/)) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const k = i < 0 ? line : line.slice(0, i);
      const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (k === 'id') ev.id = v;
      else if (k === 'event') ev.event = v;
      else if (k === 'data') { ev.data += (ev.data ? '\n' : '') + v; has = true; }
    }
    if (has) events.push(ev);
  }
  return [events, rest];
}

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

// Follows GET /jobs/{id}/events: onEvent({id, event, data}) once per event id, in order. On a
// dropped connection it reconnects after retryMs with Last-Event-ID (the server replays what
// was missed). Stops after a final state. Returns {close(), drop(pauseMs), stats}.
export function followJob(id, onEvent, { retryMs = 1000 } = {}) {
  const stats = { connects: 0, lastId: null, done: false };
  let ctl = null, closed = false, pause = 0;
  async function connect() {
    if (closed || stats.done) return;
    stats.connects++;
    ctl = new AbortController();
    const h = authHeaders({ Accept: 'text/event-stream' });
    if (stats.lastId) h['Last-Event-ID'] = stats.lastId;
    try {
      const res = await fetch(`/jobs/${id}/events`, { headers: h, signal: ctl.signal });
      if (!res.ok) { await parse(res); return; }
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let events;
        [events, buf] = parseSSE(buf + dec.decode(value, { stream: true }));
        for (const ev of events) {
          if (ev.id !== null && stats.lastId !== null && Number(ev.id) <= Number(stats.lastId)) continue;
          if (ev.id !== null) stats.lastId = ev.id;
          let data = null;
          try { data = JSON.parse(ev.data); } catch { data = ev.data; }
          onEvent({ id: ev.id, event: ev.event, data });
          if (ev.event === 'state' && data && FINAL.has(data.state)) stats.done = true;
        }
      }
    } catch (e) {
      if (e instanceof ApiError) { onEvent({ id: null, event: 'error', data: e }); return; }
    }
    if (!closed && !stats.done) {
      const wait = pause || retryMs;
      pause = 0;
      setTimeout(connect, wait);
    }
  }
  connect();
  return {
    stats,
    close() { closed = true; if (ctl) ctl.abort(); },
    // ends the current connection as a network failure would; reconnects after pauseMs
    drop(pauseMs = 0) { pause = pauseMs; if (ctl) ctl.abort(); },
  };
}
