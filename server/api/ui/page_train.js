// page_train.js: #/train (the POST /train form, with the API's field errors at their fields,
// and the jobs list) and #/jobs/{id} (state, progress, live loss curves, cancel).
import { api, followJob } from './api.js';
import { h, fmt, showError, when } from './dom.js';
import { LineChart } from './chart.js';

const METHODS = ['mkd', 'baseline', 'joint', 'finetune', 'mkd-no-iam', 'mkd-no-kd-s2r', 'mkd-no-kd-r2s'];
// config fields on the form: name, default shown (empty = the server's default)
const CONFIG = [['iters', ''], ['batch', ''], ['size', ''], ['seg_width', ''], ['ngf', ''], ['ngen_blocks', ''], ['ndf', ''], ['lr_seg', ''], ['seed', '']];

export async function render(main, key, args) {
  return key === 'jobs' && args[0] ? jobPage(main, args[0]) : trainPage(main);
}

function field(name, input, label = name) {
  return h('label', { dataset: { field: name } }, label, input, h('span', { class: 'field-error', dataset: { errorFor: name } }));
}

async function trainPage(main) {
  const page = {};
  const target = h('select', { name: 'target_dataset', id: 'f-target' });
  const assistant = h('select', { name: 'assistant_dataset', id: 'f-assistant' }, h('option', { value: '' }, '(none)'));
  const method = h('select', { name: 'method', id: 'f-method' }, METHODS.map((m) => h('option', { value: m }, m)));
  const inputs = Object.fromEntries(CONFIG.map(([n, d]) => [n, h('input', { name: `config.${n}`, id: `f-${n}`, value: d, placeholder: 'default', size: 8 })]));
  const validation = h('input', { name: 'validation', id: 'f-validation', placeholder: 'fraction or ids', size: 10 });
  const go = h('button', { type: 'submit', id: 'train-go' }, 'Start training');
  const form = h('form', { class: 'panel grid', id: 'train-form' },
    field('target_dataset', target, 'target dataset'), field('assistant_dataset', assistant, 'assistant dataset'),
    field('method', method), CONFIG.map(([n]) => field(`config.${n}`, inputs[n], n)),
    field('validation', validation, 'validation (held out)'), h('div', {}, go));
  const jobs = h('tbody', { id: 'jobs' });
  main.append(h('h2', {}, 'Train'), form, h('h3', {}, 'Jobs'),
    h('table', {}, h('thead', {}, h('tr', {}, ['job', 'kind', 'state', 'progress', 'ETA', 'model', 'error', 'created'].map((t) => h('th', {}, t)))), jobs));
  try {
    const { datasets } = await api('GET', '/datasets');
    for (const d of datasets) {
      target.append(h('option', { value: d.id }, `#${d.id} ${d.name} (${d.modality}, ${d.volume_count})`));
      assistant.append(h('option', { value: d.id }, `#${d.id} ${d.name} (${d.modality}, ${d.volume_count})`));
    }
  } catch (e) { showError(e); }

  const refresh = async () => {
    try {
      const { jobs: list } = await api('GET', '/jobs');
      jobs.replaceChildren(...list.map((j) => {
        const p = j.progress || {};
        return h('tr', { dataset: { job: j.id } },
          h('td', {}, h('a', { href: `#/jobs/${j.id}` }, `#${j.id}`)), h('td', {}, j.kind),
          h('td', { class: `state-${j.state}` }, j.state),
          h('td', { class: 'num' }, p.total ? `${p.iteration || 0} / ${p.total}` : p.stage || ''),
          h('td', { class: 'num' }, p.eta_s !== undefined && j.state === 'running' ? `${fmt(p.eta_s, 0)} s` : ''),
          h('td', {}, j.model_id ? h('a', { href: `#/models/${j.model_id}` }, `#${j.model_id}`) : ''),
          h('td', { class: 'error' }, j.error || ''), h('td', {}, when(j.created_at)));
      }));
    } catch (e) { showError(e); }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
    const body = { target_dataset: Number(target.value), method: method.value, config: {} };
    if (assistant.value) body.assistant_dataset = Number(assistant.value);
    for (const [n] of CONFIG) {
      const v = inputs[n].value.trim();
      if (v !== '') body.config[n] = Number.isNaN(Number(v)) ? v : Number(v);
    }
    const val = validation.value.trim();
    if (val) body.validation = val.includes(',') || /^\[/.test(val) ? val.replace(/[[\]]/g, '').split(',').map(Number) : Number(val);
    try {
      const job = await api('POST', '/train', body);
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      const slot = err.field && form.querySelector(`[data-error-for="${CSS.escape(err.field)}"]`);
      if (slot) slot.textContent = err.message; else showError(err);
    }
  });
  await refresh();
  page.timer = setInterval(refresh, 2000);
  page.leave = () => clearInterval(page.timer);
  window.mkdseg.train = page;
  return page;
}

async function jobPage(main, id) {
  const page = { id };
  const state = h('span', { id: 'job-state' });
  const prog = h('span', { id: 'job-progress' });
  const err = h('div', { class: 'error', id: 'job-error' });
  const cancel = h('button', { class: 'secondary', id: 'job-cancel' }, 'Cancel');
  const chartEl = h('div', { class: 'chart', id: 'loss-chart' });
  const scores = h('div', { id: 'job-scores' });
  const params = h('pre', { id: 'job-params' });
  main.append(h('h2', {}, `Job #${id}`),
    h('div', { class: 'panel' }, h('p', {}, 'state ', state, ' · ', prog, ' ', cancel), err, chartEl, scores,
      h('details', {}, h('summary', {}, 'parameters'), params)));
  const chart = new LineChart(chartEl, 'iteration', [], { title: 'losses', width: Math.min(1100, main.clientWidth - 40), height: 340 });
  page.chart = chart;
  const setState = (s, e) => {
    state.textContent = s;
    state.className = `state-${s}`;
    cancel.disabled = !(s === 'queued' || s === 'running');
    if (e) err.textContent = e;
  };
  try {
    const j = await api('GET', `/jobs/${id}`);
    setState(j.state, j.error);
    params.textContent = JSON.stringify(j.params, null, 2);
  } catch (e) { showError(e); return page; }
  cancel.addEventListener('click', async () => {
    try { await api('DELETE', `/jobs/${id}`); cancel.disabled = true; } catch (e) { showError(e); }
  });
  page.iterations = [];
  page.stream = followJob(id, ({ event, data }) => {
    if (event === 'state') setState(data.state, data.error);
    else if (event === 'progress' && data) {
      if (data.losses && data.iteration !== undefined) {
        page.iterations.push(data.iteration);
        chart.push(data.iteration, data.losses);
      }
      if (data.total) prog.textContent = `iteration ${data.iteration} / ${data.total}` + (data.eta_s !== undefined ? ` · ETA ${fmt(data.eta_s, 0)} s` : '') + (data.iters_per_s ? ` · ${fmt(data.iters_per_s, 1)} it/s` : '');
      else if (data.stage) prog.textContent = data.stage;
      const sc = data.scores || data.translation;
      if (sc) scores.textContent = `translation scores: ${JSON.stringify(sc)}`;
    } else if (event === 'error') showError(data);
  });
  page.leave = () => page.stream.close();
  window.mkdseg.job = page;
  return page;
}
