// app.js: the dashboard's shell: hash routes to pages, the bearer token (asked once, kept in
// localStorage), errors in the banner.
import { onAuthError, setToken, token } from './api.js';
import { banner } from './dom.js';

const pages = {
  segment: () => import('./page_segment.js'),
  train: () => import('./page_train.js'),
  jobs: () => import('./page_train.js'),
  models: () => import('./page_models.js'),
  compare: () => import('./page_models.js'),
  datasets: () => import('./page_datasets.js'),
};

window.mkdseg = window.mkdseg || {};
let current = null;

async function route() {
  const [name, ...args] = (location.hash.replace(/^#\/?/, '') || 'segment').split('/');
  const key = pages[name] ? name : 'segment';
  document.querySelectorAll('header nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === (key === 'jobs' ? 'train' : key === 'compare' ? 'models' : key)));
  if (current && current.leave) current.leave();
  banner('');
  const main = document.getElementById('main');
  main.replaceChildren();
  const mod = await pages[key]();
  current = await mod.render(main, key, args.map(decodeURIComponent));
  window.mkdseg.page = current;
}

function tokenUi() {
  const form = document.getElementById('token-form');
  const state = document.getElementById('token-state');
  const show = () => { state.textContent = token() ? 'token set' : ''; };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(document.getElementById('token-input').value.trim());
    document.getElementById('token-input').value = '';
    form.hidden = true;
    banner('');
    show();
  });
  onAuthError((err) => {
    banner(`${err.status} ${err.code}: ${err.message}`);
    form.hidden = false;
    document.getElementById('token-input').focus();
  });
  show();
}

tokenUi();
window.addEventListener('hashchange', route);
route();
