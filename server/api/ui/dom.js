// dom.js: small DOM helpers (no templates, no innerHTML with data).
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '—' : Number(x).toFixed(d));

export function banner(msg) {
  const b = document.getElementById('banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

// Shows an API error (ApiError or other) in the banner, in the API's own words.
export function showError(e) {
  banner(e && e.status ? `${e.status} ${e.code ? e.code + ': ' : ''}${e.message}` : String(e && e.message ? e.message : e));
}

export function when(iso) { return iso ? new Date(iso).toLocaleString() : '—'; }
