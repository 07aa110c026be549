// The list of takes (performances) of this score, from takes.json: replay buttons,
// download links, what controls made each take, and a Compare box (A/B and plots).

const FORMATS = [['mid', 'MIDI'], ['wav', 'WAV'], ['ogg', 'OGG'], ['csv', 'CSV']];

function fmtDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

/** A short description of a take's controls ("Δ 0.5 −1 0 0 2 · 2 sections · ♩ 84 · ×1.4 · reference"). */
export function describeControls(c) {
  if (!c) return '';
  const bits = [];
  if (c.mode === 'perturb') bits.push(`Δ ${(c.delta || [0, 0, 0, 0, 0]).map((v) => Number(v).toFixed(1)).join(' ')}`);
  if (c.mode === 'fixed') bits.push('fixed z');
  if (c.sections && c.sections.length) bits.push(`${c.sections.length} section${c.sections.length > 1 ? 's' : ''}`);
  if (c.base_tempo_bpm) bits.push(`♩ ${c.base_tempo_bpm}`);
  if (c.expressiveness !== undefined && c.expressiveness !== 1) bits.push(`×${c.expressiveness}`);
  if (c.reference_id) bits.push('in a reference’s style');
  if (c.pedal === 'none') bits.push('no pedal');
  if (c.pedal === 'reference') bits.push('the reference’s pedal');
  return bits.join(' · ');
}

export class TakesList {
  /**
   * @param {HTMLElement} listEl  an <ol> to fill
   * @param {(take) => void} onReplay
   * @param {(selected: object[]) => void} [onCompare]  called when the Compare boxes change
   */
  constructor(listEl, onReplay, onCompare) {
    this.el = listEl;
    this.onReplay = onReplay;
    this.onCompare = onCompare;
    this.takes = [];
    this.current = null;
    this.compared = new Set();   // performance ids ticked for comparison
  }

  /** Tick these performances for comparison (and untick the others). */
  setCompared(ids) {
    this.compared = new Set(ids);
    for (const box of this.el.querySelectorAll('.pr-take-compare')) box.checked = this.compared.has(box.value);
    if (this.onCompare) this.onCompare(this.selected());
  }

  selected() { return this.takes.filter((t) => t.performance_id && this.compared.has(t.performance_id)); }

  byId(performanceId) { return this.takes.find((t) => t.performance_id === performanceId) || null; }

  set(takes) {
    this.takes = takes;
    this.draw();
    // The page's other scripts (presets/hook.js) add to the rows: tell them they were drawn.
    this.el.dispatchEvent(new CustomEvent('player:takes', { bubbles: true, detail: { takes } }));
  }

  markCurrent(performanceId) {
    this.current = performanceId;
    for (const li of this.el.children) li.classList.toggle('pr-current', li.dataset.performanceId === performanceId);
  }

  draw() {
    this.el.replaceChildren();
    this.takes.forEach((take, k) => {
      const li = document.createElement('li');
      li.className = 'pr-take';
      li.dataset.performanceId = take.performance_id || '';
      li.dataset.jobId = take.job_id || '';
      li.dataset.state = take.state || '';
      const label = document.createElement('span');
      label.className = 'pr-take-label';
      const bits = [`Take ${k + 1}`];
      if (take.seed !== undefined && take.seed !== null) bits.push(`seed ${take.seed}`);
      if (take.variations > 1) bits.push(`variation ${take.variation + 1} of ${take.variations}`);
      const how = describeControls(take.controls);
      if (how) bits.push(how);
      if (take.n_notes) bits.push(`${take.n_notes} notes`);
      if (take.created) bits.push(fmtDate(take.created));
      label.textContent = bits.join(' · ');
      li.append(label);
      if (take.performance_id && take.notes_url) {
        const cmp = document.createElement('label');
        cmp.className = 'pr-take-compare-label';
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.className = 'pr-take-compare';
        box.value = take.performance_id;
        box.checked = this.compared.has(take.performance_id);
        box.addEventListener('change', () => {
          if (box.checked) this.compared.add(box.value); else this.compared.delete(box.value);
          if (this.onCompare) this.onCompare(this.selected());
        });
        cmp.append(box, ' Compare');
        li.append(cmp);
        const play = document.createElement('button');
        play.type = 'button';
        play.className = 'pr-take-play';
        play.textContent = 'Play';
        play.addEventListener('click', () => this.onReplay(take));
        li.append(play);
        const dl = document.createElement('span');
        dl.className = 'pr-downloads';
        for (const [key, name] of FORMATS) {
          const url = take.downloads && take.downloads[key];
          if (!url) continue;
          const a = document.createElement('a');
          a.href = url;
          a.textContent = name;
          a.setAttribute('download', '');
          a.className = `pr-dl-${key}`;
          dl.append(a);
        }
        li.append(dl);
      } else {
        const st = document.createElement('span');
        st.className = 'pr-take-state';
        st.textContent = take.state || '';
        li.append(st);
      }
      this.el.append(li);
    });
    if (this.current) this.markCurrent(this.current);
  }
}
