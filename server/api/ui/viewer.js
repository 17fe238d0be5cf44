// viewer.js: NiiVue 0.69.0 showing a CT/MR volume in three planes plus a 3-D render, the label
// map overlaid in one fixed colour per structure, and optionally the ensemble's disagreement
// map as a heat overlay. The container needs an explicit height (NiiVue sizes to its parent).
import { Niivue, NVImage, SHOW_RENDER, SLICE_TYPE } from '/ui/vendor/niivue-0.69.0.js';

// index (class), MM-WHS code, name, fixed colour
export const STRUCTURES = [
  { index: 1, code: 205, name: 'MYO', color: [230, 75, 53] },
  { index: 2, code: 420, name: 'LA', color: [77, 187, 213] },
  { index: 3, code: 500, name: 'LV', color: [0, 160, 135] },
  { index: 4, code: 550, name: 'RA', color: [60, 84, 200] },
  { index: 5, code: 600, name: 'RV', color: [243, 155, 127] },
  { index: 6, code: 820, name: 'AA', color: [230, 210, 60] },
  { index: 7, code: 850, name: 'PA', color: [180, 100, 220] },
];

export const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

export class Viewer {
  constructor(container) {
    this.container = container;
    this.canvas = document.createElement('canvas');
    container.appendChild(this.canvas);
    this.state = new Map(STRUCTURES.map((s) => [s.index, { visible: true, opacity: 1 }]));
    this.label = null;
    this.unc = null;
    this.codes = false; // label values are MM-WHS codes as well as class indices
  }

  async init() {
    this.nv = new Niivue({
      backColor: [0, 0, 0, 1], show3Dcrosshair: false, isColorbar: false, logLevel: 'error',
      multiplanarShowRender: SHOW_RENDER.ALWAYS, crosshairColor: [1, 1, 1, 0.5],
    });
    await this.nv.attachToCanvas(this.canvas);
    this.nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
    return this;
  }

  // The label colour table for the current show/hide and opacity of each structure.
  lut() {
    const R = [0], G = [0], B = [0], A = [0], I = [0], labels = ['background'];
    for (const s of STRUCTURES) {
      const st = this.state.get(s.index);
      const a = st.visible ? Math.round(255 * st.opacity) : 0;
      for (const v of this.codes ? [s.index, s.code] : [s.index]) {
        R.push(s.color[0]); G.push(s.color[1]); B.push(s.color[2]); A.push(a); I.push(v); labels.push(s.name);
      }
    }
    return { R, G, B, A, I, labels };
  }

  // image: a File or {url, name}; label, uncertainty: {url, name} or null. codes: the label
  // file may hold MM-WHS codes (dataset volumes) rather than class indices (/segment masks).
  async load({ image, label = null, uncertainty = null, codes = false }) {
    const nv = this.nv;
    while (nv.volumes.length) nv.removeVolume(nv.volumes[nv.volumes.length - 1]);
    this.codes = codes;
    const base = image instanceof File
      ? await NVImage.loadFromFile({ file: image, name: image.name, colormap: 'gray' })
      : await NVImage.loadFromUrl({ url: image.url, name: image.name, colormap: 'gray' });
    nv.addVolume(base);
    this.label = null;
    this.unc = null;
    if (label) {
      this.label = await NVImage.loadFromUrl({ url: label.url, name: label.name, opacity: 1 });
      this.label.setColormapLabel(this.lut());
      nv.addVolume(this.label);
    }
    if (uncertainty) {
      this.unc = await NVImage.loadFromUrl({
        // voxels under 0.02 bits (the two members practically agree) stay transparent
        url: uncertainty.url, name: uncertainty.name, colormap: 'warm', opacity: 0,
        cal_min: 0.02, cal_max: uncertainty.max > 0.04 ? uncertainty.max : 1,
      });
      nv.addVolume(this.unc);
    }
    nv.updateGLVolume();
  }

  setStructure(index, patch) {
    Object.assign(this.state.get(index), patch);
    if (!this.label) return;
    this.label.setColormapLabel(this.lut());
    this.nv.updateGLVolume();
  }

  setImageOpacity(v) { if (this.nv.volumes[0]) this.nv.setOpacity(0, v); }

  setUncertainty(on) {
    if (!this.unc) return;
    this.nv.setOpacity(this.nv.volumes.indexOf(this.unc), on ? 0.8 : 0);
  }

  // Tests and screenshots: the RGBA at canvas pixel (x, y) (device pixels, origin top-left),
  // read right after a redraw (the drawing buffer is not preserved).
  pixel(x, y) {
    this.nv.drawScene();
    const gl = this.nv.gl;
    const px = new Uint8Array(4);
    gl.readPixels(Math.round(x), gl.drawingBufferHeight - 1 - Math.round(y), 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    return Array.from(px);
  }

  // The canvas pixel of voxel (i, j, k) of the label volume in the axial view, with the
  // crosshair moved there (tests: the colour at a known structure's voxel).
  showVoxel(i, j, k) {
    const nv = this.nv;
    nv.setSliceType(SLICE_TYPE.AXIAL);
    const vol = this.label || nv.volumes[0];
    const A = vol.hdr.affine; // rows of the voxel (file order) -> world (mm) affine
    const mm = [0, 1, 2].map((r) => A[r][0] * i + A[r][1] * j + A[r][2] * k + A[r][3]);
    const frac = nv.mm2frac(mm);
    nv.scene.crosshairPos = frac;
    nv.opts.crosshairWidth = 0;
    nv.updateGLVolume();
    nv.drawScene();
    return nv.frac2canvasPos(frac);
  }

  multiplanar() {
    this.nv.opts.crosshairWidth = 1;
    this.nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  }
}
