// lib.mjs: what the browser tests share: a fresh PostgreSQL database, a real `mkdseg serve` on a
// free port (its port read from the JSON log), phantom volumes from `mkdseg phantom`, and
// Chromium driven by playwright-core (Debian's /usr/bin/chromium, WebGL2 by SwiftShader).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const top = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const bin = process.env.MKDSEG_TEST_BIN || path.join(top, 'build/mkdseg');
const baseUrl = process.env.MKDSEG_TEST_DATABASE_URL;
export const shotDir = path.join(top, 'build/screenshots');

export function tmp(name) {
  return mkdtempSync(path.join(process.env.MKDSEG_TEST_TMP || tmpdir(), `${name}.`));
}

// A fresh database on the test server; returns its URL.
export function createDb(name) {
  if (!baseUrl) throw new Error('MKDSEG_TEST_DATABASE_URL is not set: run the tests through make test');
  const db = `${name}_${process.pid}`;
  execFileSync('psql', [baseUrl, '-qc', `DROP DATABASE IF EXISTS ${db}`, '-c', `CREATE DATABASE ${db}`], { stdio: 'pipe' });
  return baseUrl.replace(/^(postgresql:\/\/[^/]*\/)[^?]*/, `$1${db}`);
}

export function dropDb(url) {
  const db = url.match(/^postgresql:\/\/[^/]*\/([^?]*)/)[1];
  execFileSync('psql', [baseUrl, '-qc', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`], { stdio: 'pipe' });
}

// Starts `mkdseg serve`; resolves to {url, stop(), log}.
export function startServer(dbUrl, dir, extra = []) {
  const args = ['serve', '--port', '0', '--database-url', dbUrl, '--data-dir', path.join(dir, 'data'), '--job-poll', '1',
    '--ui-dir', path.join(top, 'server/api/ui'), '--default-model', path.join(top, 'models/default.safetensors'), ...extra];
  const p = spawn(bin, args, { env: { ...process.env, MKDSEG_THREADS: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the server did not start:\n${log}`)), 120000); // a hang, not a slow machine
    p.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/"msg":"listening".*?"port":(\d+)/);
      if (m && t) {
        clearTimeout(t);
        resolve({
          url: `http://127.0.0.1:${m[1]}`,
          get log() { return log; },
          stop: () => new Promise((res) => { p.once('exit', res); p.kill('SIGTERM'); }),
        });
      }
    });
    p.once('exit', (code) => reject(new Error(`the server exited (${code}):\n${log}`)));
  });
}

// A phantom image/label pair under dir; returns [image, label].
export function phantom(dir, name, modality, seed, shape = '40,40,16') {
  const img = path.join(dir, `${name}.nii.gz`), lab = path.join(dir, `${name}_label.nii.gz`);
  execFileSync(bin, ['phantom', '--modality', modality, '--seed', String(seed), '--shape', shape, '--image', img, '--label', lab], { stdio: 'pipe' });
  return [img, lab];
}

export async function json(base, method, p, body, headers = {}) {
  const res = await fetch(base + p, {
    method, headers: { Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

export async function launch() {
  mkdirSync(shotDir, { recursive: true });
  return chromium.launch({ executablePath: process.env.MKDSEG_CHROMIUM || '/usr/bin/chromium' });
}

// A page that records console errors and page errors (each test asserts there were none).
// page.expected: HTTP statuses a test provokes on purpose; Chromium logs each such answer as a
// failed resource load, which is then not counted.
export async function newPage(browser) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.errors = [];
  page.expected = new Set();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const st = m.text().match(/^Failed to load resource: the server responded with a status of (\d+)/);
    if (!st || !page.expected.has(Number(st[1]))) page.errors.push(m.text());
  });
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(shotDir, `${name}.png`) });
}
