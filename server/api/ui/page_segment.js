// page_segment.js: drop or pick a NIfTI volume (and optionally its label), segment it with the
// chosen model (default: the promoted one), then view it with the label map, the volumes, Dice,
// timings, the mask download and the two segmentors' disagreement.
import { api, upload, modelName } from './api.js';
import { h, fmt, showError } from './dom.js';
import { legend } from './legend.js';

const isNifti = (f) => f && /\.nii(\.gz)?$/i.test(f.name);

export async function render(main) {
  const page = { result: null, viewer: null };
  const volIn = h('input', { type: 'file', accept: '.nii,.gz', id: 'vol-file' });
  const labIn = h('input', { type: 'file', accept: '.nii,.gz', id: 'label-file' });
  const model = h('select', { id: 'model' });
  const tta = h('input', { type: 'checkbox', id: 'tta' });
  const go = h('button', { type: 'submit', id: 'segment-go', disabled: true }, 'Segment');
  const bar = h('progress', { id: 'progress', max: 1, value: 0, hidden: true });
  const status = h('div', { id: 'status', class: 'muted' });
  const drop = h('div', { class: 'drop', id: 'drop' }, 'Drop a .nii / .nii.gz volume here, or pick one: ', volIn);
  let vol = null;
  const pick = (f) => {
    if (!isNifti(f)) { status.textContent = `${f ? f.name : 'that'} is not a .nii or .nii.gz file`; return; }
    vol = f;
    status.textContent = `${f.name} (${(f.size / 1048576).toFixed(1)} MB)`;
    go.disabled = false;
  };
  volIn.addEventListener('change', () => pick(volIn.files[0]));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); pick(e.dataTransfer.files[0]); });
  const out = h('div', { id: 'result' });
  const form = h('form', { class: 'panel', id: 'segment-form' }, drop,
    h('div', { class: 'row' },
      h('label', {}, 'label (optional, for Dice) ', labIn),
      h('label', {}, 'model ', model),
      h('label', {}, tta, ' flip test-time augmentation'), go),
    bar, status);
  main.append(h('h2', {}, 'Segment'), form, out);

  try {
    const { models } = await api('GET', '/models');
    for (const m of models) {
      model.append(h('option', { value: m.id, selected: m.is_default },
        `#${m.id} ${modelName(m)} ${m.method}${m.is_default ? ' (promoted)' : ''}`));
    }
  } catch (e) { showError(e); }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!vol) return;
    go.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    let timer = null;
    const t0 = performance.now();
    try {
      const res = await upload('/segment', {
        vol, label: labIn.files[0], labels: 'index', model: model.value, tta: tta.checked ? '1' : '0',
      }, (f, phase) => {
        if (phase === 'upload') { bar.value = f; status.textContent = `uploading ${Math.round(100 * f)} %`; return; }
        bar.removeAttribute('value'); // indeterminate while the engine runs
        timer = timer || setInterval(() => { status.textContent = `segmenting (queued or running): ${((performance.now() - t0) / 1000).toFixed(0)} s`; }, 250);
      });
      clearInterval(timer);
      bar.hidden = true;
      status.textContent = `done: inference #${res.id}, model #${res.model} (${res.method})`;
      page.result = res;
      await show(page, out, res, vol);
    } catch (err) {
      clearInterval(timer);
      bar.hidden = true;
      status.textContent = '';
      showError(err);
    } finally {
      go.disabled = false;
    }
  });
  window.mkdseg.segment = page;
  return page;
}

async function show(page, out, res, vol) {
  const { Viewer } = await import('./viewer.js');
  out.replaceChildren();
  const vdiv = h('div', { class: 'viewer', id: 'viewer' });
  const u = res.uncertainty;
  const uncToggle = h('input', { type: 'checkbox', id: 'unc-toggle', disabled: !u });
  const imgOp = h('input', { type: 'range', min: 0, max: 1, step: 0.05, value: 1, id: 'image-opacity' });
  const cols = [
    { key: 'ml', title: 'volume (mL)', value: (n) => res.structures[n] && res.structures[n].ml, digits: 2 },
    { key: 'dice', title: 'Dice', value: (n) => res.dice ? res.dice[n] : null, digits: 3 },
    { key: 'unc', title: 'disagreement', value: (n) => u ? u.structures[n] : null, digits: 3 },
  ];
  const viewer = new Viewer(vdiv);
  page.viewer = viewer;
  out.append(h('div', { class: 'row' },
    h('div', { class: 'grow panel' }, vdiv,
      h('div', { class: 'row' },
        h('label', {}, uncToggle, ' disagreement of the two segmentors (heat)'),
        h('label', {}, 'image opacity ', imgOp))),
    h('div', { class: 'panel' }, legend(viewer, cols),
      h('p', {}, res.dice ? `mean Dice ${fmt(res.dice.mean, 3)}` : 'no label given: no Dice'),
      h('p', { class: 'muted' }, u ? `mean disagreement ${fmt(u.mean, 4)} (Jensen-Shannon, bits; not a probability of error)` : 'single segmentor: no disagreement map'),
      h('h4', {}, 'timings (ms)'),
      h('table', { id: 'timings' }, Object.entries(res.timings_ms).map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'num' }, fmt(v, 1))))),
      h('p', {}, h('a', { href: res.mask_url, download: /\.gz$/i.test(vol.name) ? 'seg.nii.gz' : 'seg.nii', id: 'download-mask' }, 'download the mask'),
        u ? [' · ', h('a', { href: u.url, download: 'uncertainty.nii.gz' }, 'download the disagreement map')] : null))));
  await viewer.init();
  const gz = /\.gz$/i.test(vol.name);
  await viewer.load({
    image: vol,
    label: { url: res.mask_url, name: gz ? 'seg.nii.gz' : 'seg.nii' },
    uncertainty: u ? { url: u.url, name: 'uncertainty.nii.gz', max: Math.max(0.05, ...Object.values(u.structures)) * 2 } : null,
  });
  uncToggle.addEventListener('change', () => viewer.setUncertainty(uncToggle.checked));
  imgOp.addEventListener('input', () => viewer.setImageOpacity(Number(imgOp.value)));
  page.ready = true;
}
