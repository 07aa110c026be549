// "Shape the next render": seed, base tempo, expressiveness, the five latent directions
// (Delta sliders, mode perturb), sections of bars with their own Delta (typed, or picked by
// clicking two notes on the engraving), how many takes, and a reference performance to
// continue in the style of. `params()` is what the player posts as {seed, controls};
// `setControls({seed, controls})` shows stored ones (a preset's) so that they render as shown.

export const Z_DIM = 5;
const DELTA_MAX = 3;
const DELTA_LIMIT = 4;   // the server's limit (webapp.controls): stored values may reach it

/** A Delta as the sliders show it: one decimal, or up to four when it has more. */
function fmtDelta(v) {
  const x = Math.round(Number(v) * 1e4) / 1e4;
  return Number.isInteger(x * 10) ? x.toFixed(1) : String(x);
}

function make(tag, attrs = {}, text = '') {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text) el.textContent = text;
  return el;
}

function field(label, input, hint = '') {
  const wrap = make('label', { class: 'pr-field' });
  wrap.append(make('span', { class: 'pr-field-label' }, label), input);
  if (hint) wrap.append(make('span', { class: 'pr-hint' }, hint));
  return wrap;
}

function slider(name, k) {
  const input = make('input', { type: 'range', min: String(-DELTA_MAX), max: String(DELTA_MAX), step: '0.1', value: '0',
    class: `pr-delta pr-delta-${k}`, name, 'aria-label': `Latent direction ${k + 1} (Delta)` });
  const out = make('output', { class: 'pr-delta-value' }, '0.0');
  input.addEventListener('input', () => { out.textContent = fmtDelta(input.value); });
  const wrap = make('label', { class: 'pr-slider' });
  wrap.append(make('span', {}, `z${k + 1}`), input, out);
  return { wrap, input, out };
}

export class ControlsPanel {
  /**
   * @param {HTMLElement} root  where to build the panel
   * @param {{barsUrl: string, maxTakes: number}} opts
   */
  constructor(root, { barsUrl, maxTakes = 8, temperature = 1 } = {}) {
    this.defaultTemperature = temperature;
    this.root = root;
    this.barsUrl = barsUrl;
    this.bars = { n_bars: 0, bars: {} };
    this.sections = [];
    this.fixedZ = null;       // z of mode 'fixed' (shown by setControls, not editable here)
    this.picking = null;      // while choosing a passage on the engraving: {from?}
    this.build(maxTakes);
    if (barsUrl) this.loadBars();
  }

  async loadBars() {
    try {
      const resp = await fetch(this.barsUrl, { credentials: 'same-origin' });
      if (resp.ok) this.bars = await resp.json();
    } catch { /* sections can still be typed */ }
    this.el.barsInfo.textContent = this.bars.n_bars ? `bars 1–${this.bars.n_bars}` : '';
  }

  build(maxTakes) {
    const box = make('details', { class: 'pr-controls', open: '' });
    box.append(make('summary', {}, 'Shape the next render'));
    const el = {};
    el.seed = make('input', { type: 'number', min: '0', max: '2147483647', step: '1', class: 'pr-seed', placeholder: 'random' });
    el.tempo = make('input', { type: 'number', min: '20', max: '400', step: '1', class: 'pr-base-tempo', placeholder: 'as written' });
    el.expr = make('input', { type: 'range', min: '0', max: '3', step: '0.05', value: '1', class: 'pr-expressiveness' });
    el.exprOut = make('output', {}, '1.00');
    el.expr.addEventListener('input', () => { el.exprOut.textContent = Number(el.expr.value).toFixed(2); });
    el.temp = make('input', { type: 'range', min: '0', max: '1.5', step: '0.05', value: String(this.defaultTemperature), class: 'pr-temperature' });
    el.tempOut = make('output', {}, Number(this.defaultTemperature).toFixed(2));
    el.temp.addEventListener('input', () => { el.tempOut.textContent = Number(el.temp.value).toFixed(2); });
    el.takes = make('input', { type: 'number', min: '1', max: String(maxTakes), step: '1', value: '1', class: 'pr-variations' });
    el.mode = make('select', { class: 'pr-mode' });
    for (const [v, t] of [['prior', 'free: sampled from the model'], ['perturb', 'steered by the sliders (Delta)']]) {
      el.mode.append(make('option', { value: v }, t));
    }
    el.reference = make('select', { class: 'pr-reference-select' });
    el.reference.append(make('option', { value: '' }, 'none'));
    el.pedal = make('select', { class: 'pr-pedal' });
    for (const [v, t] of [['model', 'model'], ['none', 'none'], ['reference', 'as the reference']]) {
      el.pedal.append(make('option', { value: v }, t));
    }
    // "as the reference" needs a reference to take the pedal from
    const syncPedal = () => {
      el.pedal.querySelector('option[value=reference]').disabled = !el.reference.value;
      if (!el.reference.value && el.pedal.value === 'reference') el.pedal.value = 'model';
    };
    el.reference.addEventListener('change', syncPedal);
    this.syncPedal = syncPedal;
    syncPedal();
    const exprWrap = make('span', { class: 'pr-inline' });
    exprWrap.append(el.expr, el.exprOut);
    const tempWrap = make('span', { class: 'pr-inline' });
    tempWrap.append(el.temp, el.tempOut);
    const row1 = make('div', { class: 'pr-controls-row' });
    row1.append(field('Seed', el.seed, 'blank: a new one each take'), field('Base tempo (♩/min)', el.tempo),
      field('Expressiveness', exprWrap, '0 deadpan · 1 model · 3 exaggerated'),
      field('Note-level randomness', tempWrap, '0 the model’s most likely notes · 1 sampled as trained'),
      field('Takes at once', el.takes),
      field('Continue in the style of', el.reference),
      field('Pedal', el.pedal, 'sustain and soft pedal'));
    const row2 = make('div', { class: 'pr-controls-row' });
    row2.append(field('Interpretation', el.mode));
    el.sliders = [];
    const sliders = make('div', { class: 'pr-sliders', role: 'group', 'aria-label': 'Latent directions (Delta)' });
    for (let k = 0; k < Z_DIM; k += 1) {
      const s = slider(`delta${k}`, k);
      s.input.addEventListener('input', () => { el.mode.value = 'perturb'; });
      el.sliders.push(s);
      sliders.append(s.wrap);
    }
    el.reset = make('button', { type: 'button', class: 'pr-delta-reset' }, 'Zero');
    el.reset.addEventListener('click', () => this.setDelta([0, 0, 0, 0, 0]));
    sliders.append(el.reset);
    row2.append(sliders);
    // Sections of bars with their own Delta.
    const sec = make('div', { class: 'pr-sections' });
    el.secFrom = make('input', { type: 'number', min: '1', step: '1', class: 'pr-sec-from', 'aria-label': 'From bar' });
    el.secTo = make('input', { type: 'number', min: '1', step: '1', class: 'pr-sec-to', 'aria-label': 'To bar' });
    el.pick = make('button', { type: 'button', class: 'pr-sec-pick' }, 'Pick on the score');
    el.pick.addEventListener('click', () => this.startPicking());
    el.addSec = make('button', { type: 'button', class: 'pr-sec-add',
      title: 'The passage keeps the sliders’ Delta; the sliders then return to 0 for the rest of the piece' }, 'Add section with the sliders’ Delta');
    el.addSec.addEventListener('click', () => this.addSectionFromInputs());
    el.barsInfo = make('span', { class: 'pr-hint' });
    el.secList = make('ul', { class: 'pr-sec-list' });
    el.secMsg = make('span', { class: 'pr-hint pr-sec-msg', role: 'status' });
    sec.append(make('span', { class: 'pr-field-label' }, 'Section: bars'), el.secFrom, make('span', {}, '–'), el.secTo,
      el.pick, el.addSec, el.barsInfo, el.secMsg, el.secList);
    box.append(row1, row2, sec);
    this.root.replaceChildren(box);
    this.el = el;
  }

  delta() { return this.el.sliders.map((s) => Number(s.input.value)); }

  setDelta(values) {
    values.forEach((v, k) => {
      const s = this.el.sliders[k];
      const x = Number(v) || 0;
      // A stored value off the slider's 0.1 grid or past its range is shown as it is (a
      // range input would round or clamp it, and the render would differ from the preset).
      if (Math.abs(x) > Number(s.input.max)) {
        s.input.min = String(-DELTA_LIMIT);
        s.input.max = String(DELTA_LIMIT);
      }
      if (!Number.isInteger(Math.round(x * 1e4) / 1e3)) s.input.step = 'any';
      s.input.value = String(x);
      s.out.textContent = fmtDelta(x);
    });
  }

  /**
   * Show stored render parameters (a preset's) in the panel, so that the next render is
   * exactly them until the user changes something.
   * @param {{seed?: number|null, controls?: object}} params  as a preset or a take stores them
   */
  setControls({ seed = null, controls = {} } = {}) {
    const el = this.el;
    const c = controls || {};
    el.seed.value = seed === null || seed === undefined ? '' : String(seed);
    el.tempo.value = c.base_tempo_bpm ?? '';
    const expr = Number(c.expressiveness ?? 1);
    if (!Number.isInteger(Math.round(expr * 1e3) / 50)) el.expr.step = 'any';  // off the 0.05 grid
    el.expr.value = String(expr);
    el.exprOut.textContent = Number(el.expr.value).toFixed(2);
    const temp = Number(c.temperature ?? this.defaultTemperature);
    if (!Number.isInteger(Math.round(temp * 1e3) / 50)) el.temp.step = 'any';
    el.temp.value = String(temp);
    el.tempOut.textContent = Number(el.temp.value).toFixed(2);
    el.takes.value = String(c.variations ?? 1);
    this.setDelta(c.delta || new Array(Z_DIM).fill(0));
    this.sections = (c.sections || []).map((s) => ({ ...s, delta: [...s.delta] }));
    this.drawSections();
    const mode = c.mode || (c.delta || c.sections ? 'perturb' : 'prior');
    this.fixedZ = mode === 'fixed' && Array.isArray(c.z) ? [...c.z] : null;
    if (this.fixedZ && !el.mode.querySelector('option[value=fixed]')) {
      el.mode.append(make('option', { value: 'fixed' }, 'fixed: the preset’s interpretation z'));
    }
    el.mode.value = this.fixedZ ? 'fixed' : (mode === 'perturb' ? 'perturb' : 'prior');
    const ref = c.reference_id || '';
    el.reference.value = [...el.reference.options].some((o) => o.value === ref) ? ref : '';
    el.pedal.value = c.pedal || 'model';
    this.syncPedal();
  }

  setReferences(refs) {
    const sel = this.el.reference;
    const keep = sel.value;
    sel.replaceChildren(make('option', { value: '' }, 'none'));
    for (const r of refs) {
      const rep = r.report || {};
      const bars = rep.from_bar !== undefined ? ` · bars ${rep.from_bar}–${rep.to_bar}` : '';
      const pct = `${bars} · ${rep.n_matched ?? '?'} notes matched`;
      sel.append(make('option', { value: r.reference_id }, `${r.title}${pct}`));
    }
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    this.syncPedal();
  }

  /** The bar of an engraved element (Verovio id), through notemap (base id -> element id). */
  barOfElement(elementId, notemap) {
    for (const [base, el] of Object.entries(notemap || {})) {
      if (el === elementId && this.bars.bars[base]) return this.bars.bars[base];
    }
    return null;
  }

  startPicking() {
    this.picking = {};
    this.el.secMsg.textContent = 'Click the first note of the passage on the score…';
    this.root.classList.add('pr-picking');
  }

  /** A note click on the engraving; true when it was used to choose a passage. */
  notePicked(elementId, notemap) {
    if (!this.picking) return false;
    const bar = this.barOfElement(elementId, notemap);
    if (!bar) {
      this.el.secMsg.textContent = 'That note has no bar number; click another.';
      return true;
    }
    if (this.picking.from === undefined) {
      this.picking.from = bar;
      this.el.secFrom.value = String(bar);
      this.el.secMsg.textContent = `From bar ${bar}; now click the last note of the passage…`;
      return true;
    }
    const [a, b] = [Math.min(this.picking.from, bar), Math.max(this.picking.from, bar)];
    this.el.secFrom.value = String(a);
    this.el.secTo.value = String(b);
    this.el.secMsg.textContent = `Bars ${a}–${b} chosen: set the sliders and add the section.`;
    this.picking = null;
    this.root.classList.remove('pr-picking');
    return true;
  }

  addSectionFromInputs() {
    const a = Number(this.el.secFrom.value);
    const b = Number(this.el.secTo.value || this.el.secFrom.value);
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 1 || b < a) {
      this.el.secMsg.textContent = 'Give the first and last bar of the passage (first ≤ last).';
      return;
    }
    this.addSection({ from_bar: a, to_bar: b, delta: this.delta() });
    this.setDelta([0, 0, 0, 0, 0]);    // the sliders go back to the rest of the piece
    this.el.mode.value = 'perturb';
    this.el.secMsg.textContent = '';
  }

  addSection(section) {
    this.sections.push(section);
    this.drawSections();
  }

  drawSections() {
    this.el.secList.replaceChildren();
    this.sections.forEach((s, k) => {
      const li = make('li', { class: 'pr-sec' });
      li.append(make('span', {}, `bars ${s.from_bar}–${s.to_bar}: Δ = [${s.delta.map((v) => v.toFixed(1)).join(', ')}]`));
      const rm = make('button', { type: 'button', class: 'pr-sec-remove' }, 'Remove');
      rm.addEventListener('click', () => { this.sections.splice(k, 1); this.drawSections(); });
      li.append(rm);
      this.el.secList.append(li);
    });
  }

  /** {seed?, controls} for the next render (only what differs from the defaults). */
  params() {
    const el = this.el;
    const controls = {};
    if (el.mode.value === 'perturb') {
      controls.mode = 'perturb';
      controls.delta = this.delta();
      if (this.sections.length) controls.sections = this.sections.map((s) => ({ ...s }));
    } else if (el.mode.value === 'fixed' && this.fixedZ) {
      controls.mode = 'fixed';
      controls.z = [...this.fixedZ];
    }
    if (el.tempo.value !== '') controls.base_tempo_bpm = Number(el.tempo.value);
    if (Number(el.expr.value) !== 1) controls.expressiveness = Number(el.expr.value);
    if (Number(el.temp.value) !== Number(this.defaultTemperature)) controls.temperature = Number(el.temp.value);
    const takes = Number(el.takes.value || 1);
    if (takes !== 1) controls.variations = takes;
    if (el.reference.value) controls.reference_id = el.reference.value;
    if (el.pedal.value !== 'model' && (el.pedal.value !== 'reference' || el.reference.value)) controls.pedal = el.pedal.value;
    const out = { controls };
    if (el.seed.value !== '') out.seed = Number(el.seed.value);
    return out;
  }
}
