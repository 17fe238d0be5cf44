// chart.js: uPlot line charts that grow as points arrive.
import uPlot from '/ui/vendor/uplot-1.6.32.js';

const PALETTE = ['#e64b35', '#4dbbd5', '#00a087', '#3c54c8', '#f39b7f', '#e6d23c', '#b464dc', '#91d1c2', '#8491b4', '#ff9f1c'];

// A chart in el with x label xname and one series per name in names (more can be added).
export class LineChart {
  constructor(el, xname, names = [], { title = '', width = 640, height = 300, colors = null } = {}) {
    this.el = el;
    this.names = [];
    this.x = [];
    this.ys = [];
    this.opts = { title, width, height, scales: { x: { time: false } }, series: [{ label: xname }], axes: [{ stroke: '#aaa' }, { stroke: '#aaa' }] };
    this.colors = colors;
    this.u = null;
    for (const n of names) this.addSeries(n);
    this.rebuild();
  }

  addSeries(name) {
    const i = this.names.length;
    this.names.push(name);
    this.ys.push(this.x.map(() => null));
    const stroke = this.colors ? this.colors[i] : PALETTE[i % PALETTE.length];
    this.opts.series.push({ label: name, stroke, width: 1.5, spanGaps: true });
  }

  rebuild() {
    if (this.u) this.u.destroy();
    this.u = new uPlot(this.opts, [this.x, ...this.ys], this.el);
  }

  // Adds one point: x and {name: y}; unknown names become new series.
  push(x, values) {
    let grew = false;
    for (const n of Object.keys(values)) if (!this.names.includes(n)) { this.addSeries(n); grew = true; }
    this.x.push(x);
    this.names.forEach((n, i) => this.ys[i].push(values[n] ?? null));
    if (grew) this.rebuild(); else this.u.setData([this.x, ...this.ys]);
  }

  // Series count (without x) and points drawn (tests).
  get seriesCount() { return this.u.series.length - 1; }
  get points() { return this.x.length; }
}
