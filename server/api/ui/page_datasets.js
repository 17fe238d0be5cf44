// page_datasets.js: #/datasets (create, list) and #/datasets/{id} (upload image/label pairs with
// progress, each volume's facts and label statistics, open a volume in the viewer).
import { api, upload } from './api.js';
import { h, fmt, showError, when } from './dom.js';
import { legend } from './legend.js';

export async function render(main, key, args) {
  return args[0] ? datasetPage(main, args[0]) : list(main);
}

async function list(main) {
  const name = h('input', { id: 'ds-name', placeholder: 'name', required: true });
  const modality = h('select', { id: 'ds-modality' }, h('option', { value: 'ct' }, 'CT'), h('option', { value: 'mr' }, 'MR'));
  const desc = h('input', { id: 'ds-desc', placeholder: 'description' });
  const nameErr = h('span', { class: 'field-error', dataset: { errorFor: 'name' } });
  const form = h('form', { class: 'panel row', id: 'ds-form' }, h('label', {}, 'name ', name, nameErr), h('label', {}, 'modality ', modality),
    h('label', {}, 'description ', desc), h('button', { type: 'submit', id: 'ds-create' }, 'Create dataset'));
  const body = h('tbody', { id: 'datasets' });
  main.append(h('h2', {}, 'Datasets'), form,
    h('table', {}, h('thead', {}, h('tr', {}, ['dataset', 'modality', 'volumes', 'created'].map((t) => h('th', {}, t)))), body));
  const load = async () => {
    try {
      const { datasets } = await api('GET', '/datasets');
      body.replaceChildren(...datasets.map((d) => h('tr', {},
        h('td', {}, h('a', { href: `#/datasets/${d.id}` }, `#${d.id} ${d.name}`)), h('td', {}, d.modality),
        h('td', { class: 'num' }, d.volume_count), h('td', {}, when(d.created_at)))));
    } catch (e) { showError(e); }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    nameErr.textContent = '';
    try {
      const d = await api('POST', '/datasets', { name: name.value, modality: modality.value, description: desc.value });
      location.hash = `#/datasets/${d.id}`;
    } catch (err) {
      if (err.field === 'name') nameErr.textContent = err.message; else showError(err);
    }
  });
  await load();
  return { reload: load };
}

async function datasetPage(main, id) {
  const page = {};
  const img = h('input', { type: 'file', accept: '.nii,.gz', id: 'vol-image' });
  const lab = h('input', { type: 'file', accept: '.nii,.gz', id: 'vol-label' });
  const bar = h('progress', { max: 1, value: 0, hidden: true, id: 'vol-progress' });
  const go = h('button', { type: 'submit', id: 'vol-add' }, 'Upload pair');
  const body = h('tbody', { id: 'volumes' });
  const viewerBox = h('div', { id: 'volume-view' });
  const title = h('h2', {}, `Dataset #${id}`);
  const form = h('form', { class: 'panel row', id: 'vol-form' }, h('label', {}, 'image ', img), h('label', {}, 'label ', lab), go, bar);
  main.append(title, form,
    h('table', {}, h('thead', {}, h('tr', {}, ['volume', 'dims', 'spacing (mm)', 'modality', 'label: voxels / mL per structure', ''].map((t) => h('th', {}, t)))), body),
    viewerBox);
  const load = async () => {
    try {
      const d = await api('GET', `/datasets/${id}`);
      title.textContent = `Dataset #${d.id} ${d.name} (${d.modality})`;
      body.replaceChildren(...d.volumes.map((v) => h('tr', { dataset: { volume: v.id } },
        h('td', {}, `#${v.id} ${v.name || ''}`), h('td', {}, v.dims.join(' × ')),
        h('td', {}, v.spacing.map((s) => fmt(s, 2)).join(' × ')), h('td', {}, d.modality),
        h('td', {}, v.label_stats ? Object.entries(v.label_stats).map(([k, s]) => `${k} ${s.voxels} / ${fmt(s.ml, 1)}`).join(', ') : (v.has_label ? '' : 'no label')),
        h('td', {}, h('button', { class: 'secondary open', onclick: () => open(viewerBox, v) }, 'Open')))));
    } catch (e) { showError(e); }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!img.files[0]) return;
    bar.hidden = false;
    go.disabled = true;
    try {
      await upload(`/datasets/${id}/volumes`, { image: img.files[0], label: lab.files[0] }, (f, phase) => { if (phase === 'upload') bar.value = f; });
      form.reset();
      await load();
    } catch (err) { showError(err); } finally { bar.hidden = true; go.disabled = false; }
  });
  await load();
  page.reload = load;
  window.mkdseg.dataset = page;
  return page;
}

async function open(box, v) {
  const { Viewer } = await import('./viewer.js');
  box.replaceChildren();
  const vdiv = h('div', { class: 'viewer' });
  const viewer = new Viewer(vdiv);
  box.append(h('div', { class: 'row panel' }, h('div', { class: 'grow' }, h('h3', {}, `Volume #${v.id} ${v.name || ''}`), vdiv),
    legend(viewer, v.label_stats ? [{ key: 'ml', title: 'label (mL)', value: (n) => v.label_stats[n] && v.label_stats[n].ml }] : [])));
  try {
    await viewer.init();
    const gz = (n) => /\.gz$/i.test(n || '') ? '.nii.gz' : '.nii';
    await viewer.load({
      image: { url: `/volumes/${v.id}/image`, name: `image${gz(v.name)}` },
      label: v.has_label ? { url: `/volumes/${v.id}/label`, name: `label${gz(v.name)}` } : null,
      codes: true,
    });
    window.mkdseg.volumeViewer = viewer;
  } catch (e) { showError(e); }
}
