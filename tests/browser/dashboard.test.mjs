// dashboard.test.mjs: the dashboard in a real Chromium against a real `mkdseg serve` and
// PostgreSQL. The assertions are about meaning (colours, numbers, series, states), not images.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createDb, dropDb, startServer, phantom, json, launch, newPage, shot, tmp, bin, top } from './lib.mjs';
import { execFileSync } from 'node:child_process';

const T = { timeout: 300000 }; // only catches hangs: the machine may be busy
let dir, db, srv, browser, ct, ctLab, dsCt, dsMr;
const tiny = { size: 32, seg_width: 2, ngf: 4, ngen_blocks: 1, ndf: 4, batch: 2 };

before(async () => {
  dir = tmp('browser');
  db = createDb('mkdseg_browser');
  // a fixed mkd ensemble as the default model (not the shipped one, which may change), so the
  // segment page has a disagreement map to show
  srv = await startServer(db, dir, ['--default-model', path.join(top, 'tests/data/mkd_ensemble.safetensors')]);
  browser = await launch();
  [ct, ctLab] = phantom(dir, 'ct', 'ct', 5);
  dsCt = (await json(srv.url, 'POST', '/datasets', { name: 'ct', modality: 'ct' })).body.id;
  dsMr = (await json(srv.url, 'POST', '/datasets', { name: 'mr', modality: 'mr' })).body.id;
  for (const [ds, mod, seeds] of [[dsCt, 'ct', [1, 2]], [dsMr, 'mr', [11, 12]]]) {
    for (const s of seeds) {
      const [img, lab] = phantom(dir, `${mod}${s}`, mod, s);
      const fd = new FormData();
      fd.append('image', new Blob([readFileSync(img)]), path.basename(img));
      fd.append('label', new Blob([readFileSync(lab)]), path.basename(lab));
      const r = await fetch(`${srv.url}/datasets/${ds}/volumes`, { method: 'POST', body: fd });
      assert.equal(r.status, 201, await r.text());
    }
  }
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
  if (db) dropDb(db);
});

const waitFor = (page, fn, arg, timeout = 90000) => page.waitForFunction(fn, arg, { timeout, polling: 100 });
const noErrors = (page) => assert.deepEqual(page.errors, [], `console errors: ${page.errors.join('\n')}`);

// The JSON answer of POST /segment for the same files, straight from the API.
async function segmentJson(base, files) {
  const fd = new FormData();
  for (const [k, f] of Object.entries(files)) {
    if (f.startsWith('/')) fd.append(k, new Blob([readFileSync(f)]), path.basename(f));
    else fd.append(k, f);
  }
  const r = await fetch(`${base}/segment`, { method: 'POST', body: fd, headers: { Accept: 'application/json' } });
  assert.equal(r.status, 200);
  return r.json();
}

test('segment: label colours, mL and Dice as the API says, show/hide, the disagreement overlay', T, async () => {
  const page = await newPage(browser);
  await page.goto(`${srv.url}/#/segment`);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.setInputFiles('#vol-file', ct);
  await page.setInputFiles('#label-file', ctLab);
  await page.click('#segment-go');
  await waitFor(page, () => window.mkdseg.segment && window.mkdseg.segment.ready);

  // the numbers shown are the API's
  const api = await segmentJson(srv.url, { vol: ct, label: ctLab, labels: 'index' });
  const shown = await page.$$eval('table.legend tbody tr', (rows) => rows.map((r) => ({
    name: r.dataset.structure, ml: r.querySelector('[data-col=ml]').textContent, dice: r.querySelector('[data-col=dice]').textContent,
    unc: r.querySelector('[data-col=unc]').textContent })));
  assert.equal(shown.length, 7);
  for (const s of shown) {
    assert.equal(s.ml, api.structures[s.name].ml.toFixed(2), `${s.name} mL`);
    assert.equal(s.dice, api.dice[s.name].toFixed(3), `${s.name} Dice`);
    assert.equal(s.unc, api.uncertainty.structures[s.name].toFixed(3), `${s.name} disagreement`);
  }
  await shot(page, 'segment');

  // the colour at an interior voxel of LV is LV's legend colour; hiding LV changes it
  const legend = await page.$eval('tr[data-structure=LV] .swatch', (el) => getComputedStyle(el).backgroundColor);
  const want = legend.match(/\d+/g).slice(0, 3).map(Number);
  const probe = () => page.evaluate(() => {
    const v = window.mkdseg.segment.viewer, img = v.label.img, d = v.label.hdr.dims;
    const at = (i, j, k) => img[i + d[1] * (j + d[2] * k)];
    for (let k = 0; k < d[3]; k++) for (let j = 1; j < d[2] - 1; j++) for (let i = 1; i < d[1] - 1; i++) {
      let ok = true;
      for (let dj = -1; dj <= 1 && ok; dj++) for (let di = -1; di <= 1 && ok; di++) ok = at(i + di, j + dj, k) === 3;
      if (ok) { v.setImageOpacity(0); const p = v.showVoxel(i, j, k); return { p, px: v.pixel(p[0], p[1]) }; }
    }
    return null;
  });
  const a = await probe();
  assert.ok(a, 'the mask has an interior LV voxel');
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(a.px[c] - want[c]) <= 3, `LV pixel ${a.px} vs legend ${want}`);
  await page.click('tr[data-structure=LV] input.show');
  const hidden = await page.evaluate((p) => window.mkdseg.segment.viewer.pixel(p[0], p[1]), a.p);
  assert.ok(hidden.slice(0, 3).some((x, c) => Math.abs(x - want[c]) > 30), `hidden LV still drawn: ${hidden}`);
  await page.click('tr[data-structure=LV] input.show');
  const back = await page.evaluate((p) => window.mkdseg.segment.viewer.pixel(p[0], p[1]), a.p);
  assert.deepEqual(back.slice(0, 3), a.px.slice(0, 3));

  // the disagreement overlay: the pixel of the most uncertain voxel changes when it is on
  const u = await page.evaluate(() => {
    const v = window.mkdseg.segment.viewer, img = v.unc.img, d = v.unc.hdr.dims;
    let best = 0;
    for (let i = 1; i < img.length; i++) if (img[i] > img[best]) best = i;
    const i = best % d[1], j = Math.floor(best / d[1]) % d[2], k = Math.floor(best / (d[1] * d[2]));
    const p = v.showVoxel(i, j, k);
    return { p, value: img[best], px: v.pixel(p[0], p[1]) };
  });
  assert.ok(u.value > 0.05, `the largest disagreement is ${u.value}`);
  await page.click('#unc-toggle');
  const on = await page.evaluate((p) => window.mkdseg.segment.viewer.pixel(p[0], p[1]), u.p);
  assert.notDeepEqual(on.slice(0, 3), u.px.slice(0, 3), 'the heat overlay shows');
  await page.click('#unc-toggle');
  const off = await page.evaluate((p) => window.mkdseg.segment.viewer.pixel(p[0], p[1]), u.p);
  assert.deepEqual(off.slice(0, 3), u.px.slice(0, 3), 'and hides again');
  await page.click('#unc-toggle');
  await page.evaluate(() => { const v = window.mkdseg.segment.viewer; v.setImageOpacity(1); v.multiplanar(); });
  await shot(page, 'segment-uncertainty');
  noErrors(page);
  await page.close();
});

test('train: field errors at the field, live loss chart, reconnect with back-fill, cancel', T, async () => {
  const page = await newPage(browser);
  page.expected.add(422); // the bad form is refused on purpose
  await page.goto(`${srv.url}/#/train`);
  await page.waitForSelector('#f-target option', { state: 'attached' });
  await page.selectOption('#f-target', String(dsCt));
  await page.selectOption('#f-assistant', String(dsMr));
  await page.fill('#f-iters', '-4');
  await page.click('#train-go');
  const apiErr = (await json(srv.url, 'POST', '/train', { target_dataset: dsCt, assistant_dataset: dsMr, method: 'mkd', config: { iters: -4 } })).body.error;
  await page.waitForSelector('[data-error-for="config.iters"]:not(:empty)');
  assert.equal(await page.textContent('[data-error-for="config.iters"]'), apiErr.message);

  for (const [k, v] of Object.entries({ iters: 1000000, ...tiny })) await page.fill(`#f-${k}`, String(v));
  await page.click('#train-go');
  await waitFor(page, () => /^#\/jobs\/\d+$/.test(location.hash) && window.mkdseg.job && window.mkdseg.job.chart.points >= 3);
  const jobId = Number(await page.evaluate(() => window.mkdseg.job.id));
  const n1 = await page.evaluate(() => window.mkdseg.job.chart.points);
  await waitFor(page, (n) => window.mkdseg.job.chart.points > n, n1);
  assert.ok(await page.evaluate(() => window.mkdseg.job.chart.seriesCount) >= 5, 'one series per loss term');

  // a dropped connection: reconnects with Last-Event-ID after 1.5 s and back-fills
  const n2 = await page.evaluate(() => { window.mkdseg.job.stream.drop(1500); return window.mkdseg.job.chart.points; });
  await waitFor(page, (n) => window.mkdseg.job.stream.stats.connects === 2 && window.mkdseg.job.chart.points > n + 1, n2);
  await shot(page, 'train');

  await page.click('#job-cancel');
  await waitFor(page, () => document.getElementById('job-state').textContent === 'cancelled');
  assert.equal((await json(srv.url, 'GET', `/jobs/${jobId}`)).body.state, 'cancelled');
  // every progress event of the job is in the chart once, in order
  const events = await (await fetch(`${srv.url}/jobs/${jobId}/events`)).text();
  const its = [...events.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1])).filter((d) => d.losses).map((d) => d.iteration);
  assert.deepEqual(await page.evaluate(() => window.mkdseg.job.iterations), its);
  noErrors(page);
  await page.close();
});

async function waitJob(id) {
  for (let i = 0; i < 3000; i++) { // 300 s: only catches a hang, as T does
    const j = (await json(srv.url, 'GET', `/jobs/${id}`)).body;
    if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return j;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not finish`);
}

test('models: one Dice series per structure, side by side, promote changes the default', T, async () => {
  const tr = await json(srv.url, 'POST', '/train', { target_dataset: dsCt, assistant_dataset: dsMr, method: 'mkd', config: { iters: 20, ...tiny } });
  assert.equal(tr.status, 202);
  const job = await waitJob(tr.body.id);
  assert.equal(job.state, 'succeeded', job.error);
  const m2 = job.model_id;
  for (const m of [1, m2, 1]) {
    const ev = await json(srv.url, 'POST', `/models/${m}/evaluate`, { dataset: dsCt });
    assert.equal((await waitJob(ev.body.id)).state, 'succeeded');
  }
  const page = await newPage(browser);
  await page.goto(`${srv.url}/#/models/1`);
  await waitFor(page, () => window.mkdseg.model && window.mkdseg.model.charts);
  const charts = await page.evaluate(() => window.mkdseg.model.charts.map((c) => [c.seriesCount, c.points]));
  assert.deepEqual(charts, [[7, 2]], 'one chart (one dataset), 7 structures, 2 evaluations');

  await page.goto(`${srv.url}/#/compare/1/${m2}`);
  await waitFor(page, () => window.mkdseg.compare && window.mkdseg.compare.panels.length === 2);
  assert.deepEqual(await page.evaluate(() => window.mkdseg.compare.panels.map((p) => p.charts.map((c) => c.seriesCount))), [[7], [7]]);
  await shot(page, 'models-compare');

  await page.goto(`${srv.url}/#/models`);
  await page.waitForSelector(`tr[data-model="${m2}"] button.promote`);
  await page.click(`tr[data-model="${m2}"] button.promote`);
  await page.waitForSelector(`tr[data-model="${m2}"] td.promoted:text("yes")`);
  const def = (await json(srv.url, 'GET', '/models')).body.models.find((m) => m.is_default);
  assert.equal(def.id, m2);
  await page.goto(`${srv.url}/#/segment`);
  await page.waitForSelector('#model option', { state: 'attached' });
  assert.equal(await page.$eval('#model', (s) => s.value), String(m2), 'the promoted model is the default choice');
  const info = (await json(srv.url, 'GET', '/monailabel/info/')).body;
  const shown = await page.$$eval('#model option', (os) => os.map((o) => o.textContent));
  for (const name of Object.keys(info.models))
    assert.ok(shown.some((t) => t.includes(name)), `Slicer's ${name} is named so on the page too: ${shown}`);
  assert.equal((await json(srv.url, 'POST', '/models/1/promote')).status, 200);
  noErrors(page);
  await page.close();
});

test('datasets: create, upload a pair with progress, the volume facts, open it in the viewer', T, async () => {
  const page = await newPage(browser);
  await page.goto(`${srv.url}/#/datasets`);
  await page.fill('#ds-name', 'from the page');
  await page.click('#ds-create');
  await waitFor(page, () => /^#\/datasets\/\d+$/.test(location.hash) && window.mkdseg.dataset);
  const [img, lab] = phantom(dir, 'ds-ct', 'ct', 7);
  await page.setInputFiles('#vol-image', img);
  await page.setInputFiles('#vol-label', lab);
  await page.click('#vol-add');
  await page.waitForSelector('#volumes tr');
  const id = Number(await page.evaluate(() => location.hash.split('/')[2]));
  const d = (await json(srv.url, 'GET', `/datasets/${id}`)).body;
  assert.equal(d.volumes.length, 1);
  const row = await page.textContent('#volumes tr');
  assert.ok(row.includes(d.volumes[0].dims.join(' × ')), row);
  assert.ok(row.includes(`LV ${d.volumes[0].label_stats.LV.voxels}`), row);
  await page.click('#volumes tr button.open');
  await waitFor(page, () => window.mkdseg.volumeViewer && window.mkdseg.volumeViewer.nv.volumes.length === 2);
  await shot(page, 'dataset');
  noErrors(page);
  await page.close();
});

test('auth on: the 401 message without a token, the upload with it', T, async () => {
  const adir = tmp('browser-auth');
  const adb = createDb('mkdseg_browser_auth');
  const asrv = await startServer(adb, adir, ['--auth', 'on', '--workers', '0']);
  try {
    const tok = execFileSync(bin, ['token', 'create', '--name', 'ui', '--database-url', adb], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const auth = { Authorization: `Bearer ${tok}` };
    const ds = (await json(asrv.url, 'POST', '/datasets', { name: 'a', modality: 'ct' }, auth)).body.id;
    const want = (await json(asrv.url, 'POST', '/datasets', { name: 'b', modality: 'ct' })).body.error;
    const page = await newPage(browser);
    page.expected.add(401); // the upload without a token is refused on purpose
    await page.goto(`${asrv.url}/#/datasets/${ds}`);
    await page.setInputFiles('#vol-image', ct);
    await page.click('#vol-add');
    await page.waitForSelector('#banner:not([hidden])');
    assert.equal(await page.textContent('#banner'), `401 ${want.code}: ${want.message}`);
    assert.equal(await page.isVisible('#token-form'), true, 'the page asks for a token');
    await page.fill('#token-input', tok);
    await page.click('#token-form button');
    await page.setInputFiles('#vol-image', ct);
    await page.click('#vol-add');
    await page.waitForSelector('#volumes tr');
    assert.equal((await json(asrv.url, 'GET', `/datasets/${ds}`, undefined, auth)).body.volumes.length, 1);
    assert.equal((await json(asrv.url, 'GET', `/datasets/${ds}`)).status, 401, 'reads need the token too');
    noErrors(page);
    await page.close();
  } finally {
    await asrv.stop();
    dropDb(adb);
  }
});

// A raw GET (the path is sent exactly as given: no client-side normalisation).
function rawGet(base, p, headers = {}) {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('static files: types, ETag and 304, gzip, CSP, no way out of the folder', T, async () => {
  const index = await rawGet(srv.url, '/');
  assert.equal(index.status, 200);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.match(index.headers['content-security-policy'], /default-src 'none'; script-src 'self'/);
  assert.equal(index.headers['x-content-type-options'], 'nosniff');
  const js = await rawGet(srv.url, '/ui/app.js', { 'Accept-Encoding': 'gzip' });
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['content-encoding'], 'gzip');
  const { gunzipSync } = await import('node:zlib');
  const plain = readFileSync(new URL('../../server/api/ui/app.js', import.meta.url));
  assert.deepEqual(gunzipSync(js.body), plain);
  const etag = js.headers.etag;
  const again = await rawGet(srv.url, '/ui/app.js', { 'If-None-Match': etag });
  assert.equal(again.status, 304);
  assert.equal(again.body.length, 0);
  assert.equal((await rawGet(srv.url, '/ui/app.js', { 'Accept-Encoding': 'gzip;q=0' })).headers['content-encoding'], undefined);
  assert.equal((await rawGet(srv.url, '/ui/style.css')).headers['content-type'], 'text/css; charset=utf-8');
  const v = await rawGet(srv.url, '/ui/vendor/niivue-0.69.0.js');
  assert.equal(v.status, 200);
  assert.match(v.headers['cache-control'], /immutable/);
  for (const p of ['/ui/../../Makefile', '/ui/..%2f..%2fMakefile', '/ui/%2e%2e%2fapi.js', '/ui/.gitignore', '/ui/vendor/..%2fapp.js',
    '/ui/vendor/../../../../etc/passwd', '/ui/%2Fetc%2Fpasswd', '/ui/nothere.js', '/ui/Makefile']) {
    const r = await rawGet(srv.url, p);
    assert.equal(r.status, 404, `${p}: ${r.status}`);
    assert.equal(r.headers['content-type'], 'application/json', p);
    assert.ok(!r.body.toString().includes('root:'), p);
  }
});
