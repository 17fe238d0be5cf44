// page_models.js: #/models (the table, promote, evaluate, pick two to compare), #/models/{id}
// (lineage and the per-structure Dice history from GET /dice, one chart per dataset) and
// #/compare/{a}/{b} (two model pages side by side).
import { api, modelName } from './api.js';
import { h, fmt, showError, when } from './dom.js';
import { LineChart } from './chart.js';
import { STRUCTURES, rgb } from './viewer.js';

export async function render(main, key, args) {
  if (key === 'compare') return compare(main, args);
  return args[0] ? modelPage(main, args[0]) : table(main);
}

// The latest evaluation run's mean Dice per model id (from GET /dice).
function latestMeans(runs) {
  const m = new Map();
  for (const r of runs) m.set(r.model_id, r.mean_dice);
  return m;
}

async function table(main) {
  const page = {};
  const body = h('tbody', { id: 'models' });
  const dsSel = h('select', { id: 'eval-dataset' });
  const cmp = h('button', { id: 'compare-go', class: 'secondary' }, 'Compare the two ticked');
  main.append(h('h2', {}, 'Models'),
    h('p', {}, 'evaluate on ', dsSel, ' · ', cmp),
    h('table', {}, h('thead', {}, h('tr', {}, ['', 'model', 'method', 'datasets', 'created', 'mean Dice', 'promoted', ''].map((t) => h('th', {}, t)))), body));
  const load = async () => {
    try {
      const [{ models }, { runs }, { datasets }] = await Promise.all([api('GET', '/models'), api('GET', '/dice'), api('GET', '/datasets')]);
      dsSel.replaceChildren(...datasets.map((d) => h('option', { value: d.id }, `#${d.id} ${d.name}`)));
      const means = latestMeans(runs);
      body.replaceChildren(...models.map((m) => h('tr', { dataset: { model: m.id } },
        h('td', {}, h('input', { type: 'checkbox', class: 'pick', value: m.id })),
        h('td', {}, h('a', { href: `#/models/${m.id}` }, `#${m.id} ${modelName(m)}`)),
        h('td', {}, m.method),
        h('td', {}, (m.datasets || []).map((d) => `${d.role} #${d.dataset_id}`).join(', ')),
        h('td', {}, when(m.created_at)),
        h('td', { class: 'num' }, fmt(means.get(m.id), 3)),
        h('td', { class: 'promoted' }, m.is_default ? 'yes' : ''),
        h('td', {},
          h('button', { class: 'promote', disabled: m.is_default, onclick: () => promote(m.id).then(load) }, 'Promote'), ' ',
          h('button', { class: 'secondary evaluate', onclick: () => evaluate(m.id, dsSel.value) }, 'Evaluate')))));
    } catch (e) { showError(e); }
  };
  cmp.addEventListener('click', () => {
    const ids = [...body.querySelectorAll('.pick:checked')].map((c) => c.value);
    if (ids.length === 2) location.hash = `#/compare/${ids[0]}/${ids[1]}`;
    else showError(new Error('tick exactly two models to compare'));
  });
  await load();
  page.reload = load;
  window.mkdseg.models = page;
  return page;
}

async function promote(id) {
  try { await api('POST', `/models/${id}/promote`); } catch (e) { showError(e); }
}

async function evaluate(id, dataset) {
  try {
    const job = await api('POST', `/models/${id}/evaluate`, { dataset: Number(dataset) });
    location.hash = `#/jobs/${job.id}`;
  } catch (e) { showError(e); }
}

// One model: facts, lineage and its Dice charts, into el. Returns {charts}.
async function modelPanel(el, id, width) {
  const [m, { runs }] = await Promise.all([api('GET', `/models/${id}`), api('GET', `/dice?model=${encodeURIComponent(id)}`)]);
  const meta = m.metadata || {};
  el.append(h('h3', {}, `Model #${m.id} ${modelName(m)}`),
    h('dl', { class: 'facts' },
      h('dt', {}, 'method'), h('dd', {}, m.method),
      h('dt', {}, 'modality'), h('dd', {}, m.modality || '—'),
      h('dt', {}, 'created'), h('dd', {}, when(m.created_at)),
      h('dt', {}, 'promoted'), h('dd', {}, m.is_default ? 'yes' : 'no'),
      h('dt', {}, 'datasets'), h('dd', {}, (m.datasets || []).map((d) => h('span', {}, `${d.role} `, h('a', { href: `#/datasets/${d.dataset_id}` }, `#${d.dataset_id}`), ' ')) ),
      h('dt', {}, 'trained by'), h('dd', {}, m.job_id ? h('a', { href: `#/jobs/${m.job_id}` }, `job #${m.job_id}`) : 'uploaded or default'),
      h('dt', {}, 'parent'), h('dd', {}, meta['mkdseg.parent'] || m.parent_id || '—'),
      h('dt', {}, 'iterations'), h('dd', {}, meta['mkdseg.iterations'] || '—'),
      h('dt', {}, 'weights'), h('dd', {}, h('a', { href: `/models/${m.id}/weights` }, m.weights_sha256.slice(0, 16) + '…'))),
    h('div', {}, h('button', { class: 'promote', disabled: m.is_default, onclick: () => promote(m.id).then(() => route()) }, 'Promote')),
    h('details', {}, h('summary', {}, 'training config'), h('pre', {}, JSON.stringify(m.config, null, 2))));
  const byDs = new Map();
  for (const r of runs) { if (!byDs.has(r.dataset_id)) byDs.set(r.dataset_id, []); byDs.get(r.dataset_id).push(r); }
  const charts = [];
  if (!byDs.size) el.append(h('p', { class: 'muted' }, 'not evaluated yet: Evaluate on the Models page'));
  for (const [ds, list] of byDs) {
    const c = h('div', { class: 'chart dice-chart', dataset: { dataset: ds } });
    el.append(h('h4', {}, `Dice on dataset #${ds} (one point per evaluation)`), c);
    const chart = new LineChart(c, 'evaluation', STRUCTURES.map((s) => s.name), { width, height: 260, colors: STRUCTURES.map((s) => rgb(s.color)) });
    list.forEach((r, i) => chart.push(i + 1, Object.fromEntries(STRUCTURES.map((s) => [s.name, r.structures[s.name] ? r.structures[s.name].dice : null]))));
    charts.push(chart);
  }
  return { model: m, charts };
}

function route() { window.dispatchEvent(new HashChangeEvent('hashchange')); }

async function modelPage(main, id) {
  const el = h('div', { class: 'panel', id: `model-${id}` });
  main.append(el);
  try { return (window.mkdseg.model = await modelPanel(el, id, Math.min(900, main.clientWidth - 60))); } catch (e) { showError(e); return {}; }
}

async function compare(main, ids) {
  const row = h('div', { class: 'row' });
  main.append(h('h2', {}, `Models #${ids[0]} and #${ids[1]}`), row);
  const w = Math.floor((main.clientWidth - 100) / 2);
  try {
    const panels = [];
    for (const id of ids.slice(0, 2)) {
      const el = h('div', { class: 'panel grow', id: `model-${id}` });
      row.append(el);
      panels.push(await modelPanel(el, id, w));
    }
    return (window.mkdseg.compare = { panels });
  } catch (e) { showError(e); return {}; }
}
