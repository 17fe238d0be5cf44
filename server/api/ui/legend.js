// legend.js: the structures table under a viewer: colour, show/hide, opacity, and per-structure
// numbers (mL, Dice, disagreement) when given.
import { h, fmt } from './dom.js';
import { STRUCTURES, rgb } from './viewer.js';

// cols: [{title, value(structureName) -> number|null, digits}]
export function legend(viewer, cols = []) {
  const rows = STRUCTURES.map((s) => h('tr', { dataset: { structure: s.name } },
    h('td', {}, h('span', { class: 'swatch', dataset: { color: s.color.join(',') } }), ' ', s.name),
    h('td', {}, h('input', { type: 'checkbox', checked: true, title: `show ${s.name}`, class: 'show',
      onchange: (e) => viewer.setStructure(s.index, { visible: e.target.checked }) })),
    h('td', {}, h('input', { type: 'range', min: 0, max: 1, step: 0.05, value: 1, class: 'opacity', title: `${s.name} opacity`,
      oninput: (e) => viewer.setStructure(s.index, { opacity: Number(e.target.value) }) })),
    cols.map((c) => h('td', { class: 'num', dataset: { col: c.key } }, fmt(c.value(s.name), c.digits ?? 2)))));
  const t = h('table', { class: 'legend' },
    h('thead', {}, h('tr', {}, h('th', {}, 'structure'), h('th', {}, 'show'), h('th', {}, 'opacity'),
      cols.map((c) => h('th', { class: 'num' }, c.title)))),
    h('tbody', {}, rows));
  // swatch colours through the CSSOM (the CSP forbids inline style attributes)
  t.querySelectorAll('.swatch').forEach((el) => { el.style.background = rgb(el.dataset.color.split(',').map(Number)); });
  return t;
}
