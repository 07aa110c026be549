// Reference performances of this score: upload a MIDI (aligned on the server, which answers
// with how well it fits), see the report (matched / missing / extra notes, part of the score
// covered), play it, and render the next take in its style.

import { getJSON, HttpError } from './api.js';

function make(tag, attrs = {}, text = '') {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text) el.textContent = text;
  return el;
}

/** One line about an alignment report (render.align.AlignmentReport.to_dict()). */
export function describeReport(rep) {
  if (!rep) return '';
  const bits = [];
  if (rep.n_matched !== undefined) bits.push(`${rep.n_matched} notes matched`);
  if (rep.n_missing !== undefined) bits.push(`${rep.n_missing} score notes not played`);
  if (rep.n_extra !== undefined) bits.push(`${rep.n_extra} extra notes`);
  const cover = rep.coverage ?? rep.passage_fraction;
  if (cover !== undefined) bits.push(`${Math.round(cover * 100)}% of the score covered`);
  if (rep.from_bar !== undefined && rep.to_bar !== undefined) bits.push(`bars ${rep.from_bar}–${rep.to_bar}`);
  return bits.join(' · ');
}

export class ReferencesPanel {
  /**
   * @param {HTMLElement} root
   * @param {{url: string, csrf: string, onPlay: (ref) => void, onUse: (ref) => void, onChange: (refs) => void}} opts
   */
  constructor(root, { url, csrf, onPlay, onUse, onChange }) {
    Object.assign(this, { root, url, csrf, onPlay, onUse, onChange });
    this.refs = [];
    const h = make('h2', {}, 'Reference performances');
    const form = make('form', { class: 'pr-ref-form' });
    this.file = make('input', { type: 'file', accept: '.mid,.midi,audio/midi', class: 'pr-ref-file', 'aria-label': 'MIDI performance' });
    this.upload = make('button', { type: 'submit', class: 'pr-ref-upload' }, 'Upload and align');
    this.status = make('span', { class: 'pr-ref-status', role: 'status' });
    this.error = make('div', { class: 'pr-ref-error pr-message', role: 'alert', hidden: '' });
    form.append(make('span', {}, 'A MIDI recording of this piece (or part of it): '), this.file, this.upload, this.status);
    form.addEventListener('submit', (ev) => { ev.preventDefault(); this.send(); });
    this.list = make('ul', { class: 'pr-ref-list' });
    root.replaceChildren(h, form, this.error, this.list);
  }

  async load() {
    try {
      this.set(await getJSON(this.url));
    } catch { /* the list stays empty */ }
  }

  set(refs) {
    this.refs = refs;
    this.draw();
    if (this.onChange) this.onChange(refs);
  }

  async send() {
    const f = this.file.files && this.file.files[0];
    this.error.hidden = true;
    if (!f) { this.showError('Choose a MIDI file first.'); return; }
    const body = new FormData();
    body.append('file', f);
    this.upload.disabled = true;
    this.status.textContent = 'Aligning with the score…';
    try {
      const resp = await fetch(this.url, { method: 'POST', body, credentials: 'same-origin',
        headers: { 'X-CSRFToken': this.csrf || '', Accept: 'application/json' } });
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new HttpError(resp.status, data.error || `${resp.status} ${resp.statusText}`);
      this.status.textContent = `Aligned: ${describeReport(data.report)}`;
      this.file.value = '';
      this.set([data, ...this.refs.filter((r) => r.reference_id !== data.reference_id)]);
    } catch (e) {
      this.status.textContent = '';
      this.showError(`The reference was not stored: ${e.message}`);
    } finally {
      this.upload.disabled = false;
    }
  }

  async remove(ref) {
    try {
      const resp = await fetch(ref.delete_url, { method: 'POST', credentials: 'same-origin',
        headers: { 'X-CSRFToken': this.csrf || '', Accept: 'application/json' } });
      if (!resp.ok) throw new HttpError(resp.status, `${resp.status} ${resp.statusText}`);
      this.set(this.refs.filter((r) => r.reference_id !== ref.reference_id));
    } catch (e) {
      this.showError(`The reference could not be deleted: ${e.message}`);
    }
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  draw() {
    this.list.replaceChildren();
    for (const ref of this.refs) {
      const li = make('li', { class: 'pr-ref' });
      li.dataset.referenceId = ref.reference_id;
      li.append(make('strong', {}, ref.title), make('span', { class: 'pr-ref-report' }, ` ${describeReport(ref.report)} `));
      const play = make('button', { type: 'button', class: 'pr-ref-play' }, 'Play it');
      play.addEventListener('click', () => this.onPlay(ref));
      const use = make('button', { type: 'button', class: 'pr-ref-use' }, 'Render in its style');
      use.addEventListener('click', () => this.onUse(ref));
      const del = make('button', { type: 'button', class: 'pr-ref-delete' }, 'Delete');
      del.addEventListener('click', () => this.remove(ref));
      li.append(play, use, del);
      this.list.append(li);
    }
  }
}
