// The score page's player, mounted on #player (see the web contract): engraves the
// score, renders takes through the job WebSocket and plays them while they stream,
// highlighting the sounding notes.
//
// The test and benchmark probe, window.__player, is player/probe.js; comparing takes (A/B,
// where they differ, playing a reference) is player/compare.js, a Comparison the Player owns.
import { getJSON, getText, postJSON } from './player/api.js';
import { JobStream } from './player/stream.js';
import { PianoSampler } from './player/sampler.js';
import { Transport } from './player/transport.js';
import { ScoreView } from './player/score-view.js';
import { TakesList } from './player/takes.js';
import { buildUI, fmtTime, showMessage } from './player/ui.js';
import { ControlsPanel } from './player/controls.js';
import { PlotsPanel } from './player/plots.js';
import { ReferencesPanel } from './player/references.js';
import { Comparison } from './player/compare.js';
import { playerProbe } from './player/probe.js';

const SAMPLES = new URL('../vendor/piano/', import.meta.url);

export class Player {
  constructor(root) {
    this.root = root;
    this.cfg = { ...root.dataset };
    this.ui = buildUI(root);
    this.ctx = new (window.AudioContext || window.webkitAudioContext)({ latencyHint: 'interactive' });
    this.sampler = new PianoSampler(this.ctx, SAMPLES);
    this.transport = new Transport(this.ctx, this.sampler, { onEnded: () => this.refreshButtons() });
    this.score = new ScoreView(this.ui.score);
    this.comparison = new Comparison(this);
    this.takes = new TakesList(this.ui.takes, (take) => this.replay(take), (sel) => this.comparison.compare(sel));
    this.controls = new ControlsPanel(this.ui.controls, { barsUrl: this.cfg.barsUrl, maxTakes: Number(this.cfg.maxTakes) || 8,
      temperature: this.cfg.temperature === undefined ? 1 : Number(this.cfg.temperature) });
    this.paramsHook = () => this.controls.params();
    this.plots = new PlotsPanel(this.ui.plots);
    this.live = new Map();        // variation -> notes of the take streaming now
    this.livePedal = new Map();   // variation -> its pedal events so far
    this.liveVariation = 0;
    if (this.cfg.referencesUrl) {
      this.references = new ReferencesPanel(this.ui.references, {
        url: this.cfg.referencesUrl, csrf: this.cfg.csrf,
        onPlay: (ref) => this.comparison.playReference(ref),
        onUse: (ref) => { this.controls.el.reference.value = ref.reference_id; this.render(); },
        onChange: (refs) => this.controls.setReferences(refs),
      });
    }
    this.score.onNoteClick = (elementId) => {
      if (!this.controls.notePicked(elementId, this.notemap)) this.seekToElement(elementId);
    };
    this.notemap = {};
    this.stream = null;
    this.job = null;
    this.stats = { notesReceived: 0, chunks: 0, highlightsTotal: 0, clickAt: null, firstSoundMs: null, doneMs: null };
    this.streaming = false;
    this.error = null;
    this.scoreReady = false;
    this.timeline = {};   // ms after the Render click: posted, queued, running, firstChunk
    this.shown = new Set(); // notes highlighted in the last frame
    this.chunkLog = [];   // per chunk: notes, arrival (ms), playback position (s) and state
    this.wire();
    this.init();
    this.loop();
  }

  wire() {
    const { ui } = this;
    ui.render.addEventListener('click', () => this.render());
    ui.cancel.addEventListener('click', () => this.cancel());
    ui.ab.addEventListener('click', () => this.comparison.switchAB());
    ui.play.addEventListener('click', () => {
      if (this.transport.state === 'playing' || this.transport.state === 'waiting') this.transport.pause();
      else { this.ctx.resume(); this.transport.play(); }
      this.refreshButtons();
    });
    document.addEventListener('keydown', (ev) => {
      const tag = (ev.target && ev.target.tagName) || '';
      if (ev.code === 'Space' && !/INPUT|TEXTAREA|SELECT|BUTTON/.test(tag) && !ui.play.disabled) {
        ev.preventDefault();
        ui.play.click();
      }
    });
    ui.seek.addEventListener('input', () => { this.seeking = true; this.showTime(Number(ui.seek.value)); });
    ui.seek.addEventListener('change', () => {
      this.seeking = false;
      this.transport.seek(Number(ui.seek.value));
      this.refreshButtons();
    });
    this.sampler.ready.catch((e) => this.fail(`Piano samples could not be loaded: ${e.message}`));
  }

  async init() {
    try {
      const [mei, notemap] = await Promise.all([getText(this.cfg.meiUrl), getJSON(this.cfg.notemapUrl)]);
      this.notemap = notemap;
      if (mei.trim()) await this.score.load(mei);
      else this.ui.score.textContent = 'This score has no engraving; it can still be rendered and played.';
      this.scoreReady = true;
      this.setStatus('Ready');
    } catch (e) {
      this.fail(`The score could not be shown: ${e.message}`);
    }
    this.loadTakes();
    if (this.references) this.references.load();
  }

  /** Seek to the next time (after the current position, else the first) that `elementId` sounds. */
  seekToElement(elementId) {
    const t = this.transport;
    if (!t.notes.length) return;
    const hits = t.notes.filter((n) => this.notemap[n.base] === elementId);
    if (!hits.length) return;
    const now = t.position();
    const next = hits.find((n) => n.onset > now + 0.05) || hits[0];
    t.seek(Math.max(0, next.onset - 0.02));
    this.refreshButtons();
  }

  async loadTakes() {
    if (!this.cfg.takesUrl) return;
    try {
      const takes = await getJSON(this.cfg.takesUrl);
      this.takes.set(Array.isArray(takes) ? takes : takes.takes || []);
      this.ui.render.textContent = this.takes.takes.length ? 'Render again' : 'Render';
    } catch (e) {
      this.fail(`The list of takes could not be loaded: ${e.message}`);
    }
  }

  renderParams() {
    // Issue 5's controls hook in here; each take gets a fresh seed.
    const extra = typeof this.paramsHook === 'function' ? this.paramsHook() : {};
    return { seed: Math.floor(Math.random() * 2 ** 31), ...extra };
  }

  /** Render a take; ``url`` replaces the score's render URL (/api/v1/scores/<id>/render/) for
   * this one request, and ``params`` are sent beside the panel's seed and controls (a preset's
   * apply URL, which keeps the preset's reference performance, with its ``score_id``). */
  async render({ url, params } = {}) {
    showMessage(this.ui, '');
    this.error = null;
    this.ctx.resume();   // inside the click: the browser lets audio start
    this.sampler.holdBackground(); // no background sample downloads until the first sound (or an end)
    this.closeStream();
    this.transport.reset();
    this.stats = { ...this.stats, notesReceived: 0, chunks: 0, clickAt: performance.now(), firstSoundMs: null, doneMs: null, peak: 0 };
    this.chunkLog = [];
    this.timeline = {};
    this.live = new Map();
    this.livePedal = new Map();
    this.liveVariation = 0;
    this.ui.render.disabled = true;
    this.setStatus('Starting…');
    let job;
    try {
      job = await postJSON(url || this.cfg.renderUrl, { ...this.renderParams(), ...params }, this.cfg.csrf);
    } catch (e) {
      this.ui.render.disabled = false;
      this.sampler.resumeBackground();
      this.fail(`Render refused: ${e.message}`);
      return;
    }
    this.job = job;
    this.mark('posted');
    this.streaming = true;
    this.expected = Number(job.n_notes_total) || Number(this.cfg.nNotes) || null;
    this.ui.progress.hidden = false;
    this.ui.progress.value = 0;
    this.ui.cancel.hidden = false;
    this.takes.markCurrent(null);
    this.stream = new JobStream(job.ws_url, {
      onState: (state, message) => this.onState(state, message),
      onQueue: (q) => this.onQueue(q),
      onNotes: (notes, seq, pedal) => this.onNotes(notes, pedal),
      onDone: (msg) => this.onDone(msg),
      onError: (text) => { this.endStream(); this.fail(text); },
    });
    this.refreshButtons();
  }

  /** Milliseconds since the Render click of a named step (kept once per take). */
  mark(name) {
    if (this.stats.clickAt !== null && !(name in this.timeline)) this.timeline[name] = Math.round(performance.now() - this.stats.clickAt);
  }

  onState(state, message) {
    this.mark(state);
    if (state === 'queued') this.setStatus('Queued…');
    else if (state === 'running') this.setStatus('Rendering…');
    else if (state === 'failed') {
      this.endStream();
      this.fail(message || 'The render failed.');
      this.loadTakes();
    } else if (state === 'cancelled') {
      this.endStream();
      this.setStatus('Cancelled');
      this.transport.markComplete();
      this.loadTakes();
    }
  }

  /** While queued: the server's place in the queue and estimated wait ({position, eta_s}). */
  onQueue(q) {
    if (this.stats.notesReceived > 0 || !Number.isInteger(q.position) || q.position < 1) return;
    const eta = q.eta_s >= 90 ? `about ${Math.round(q.eta_s / 60)} min` : `about ${Math.max(1, Math.round(q.eta_s))} s`;
    this.setStatus(`Queued… position ${q.position}, ${eta}`);
  }

  async onNotes(notes, pedal = []) {
    this.mark('firstChunk');
    this.stats.chunks += 1;
    if (this.chunkLog.length < 5000) {
      this.chunkLog.push({ n: notes.length, ms: performance.now(), pos: this.transport.position(), state: this.transport.state });
    }
    this.stats.notesReceived += notes.length;
    for (const n of notes) {
      const v = n.v || 0;
      if (!this.live.has(v)) this.live.set(v, []);
      this.live.get(v).push(n);
    }
    for (const e of pedal) {
      const v = e.v || 0;
      if (!this.livePedal.has(v)) this.livePedal.set(v, []);
      this.livePedal.get(v).push(e);
    }
    this.transport.addPedal(pedal.filter((e) => (e.v || 0) === this.liveVariation));
    this.transport.add(notes.filter((n) => (n.v || 0) === this.liveVariation));
    this.comparison.refresh();
    const n = this.stats.notesReceived;
    this.setStatus(this.expected ? `Rendering… ${n} / ${this.expected} notes` : `Rendering… ${n} notes`);
    if (this.expected) this.ui.progress.value = Math.min(1, n / this.expected);
    if (this.transport.state === 'idle' && !this.starting) {
      this.starting = true;
      try {
        await this.sampler.ready;
      } catch {
        return; // the message is shown already
      } finally {
        this.starting = false;
      }
      if (this.transport.state === 'idle') this.start();
    }
  }

  start() {
    this.sampler.resumeBackground();
    this.transport.play();
    const t = this.transport;
    if (t.notes.length && this.stats.clickAt !== null && this.stats.firstSoundMs === null) {
      const ahead = (t.t0 + t.notes[0].onset - this.ctx.currentTime) * 1000;
      this.stats.firstSoundMs = performance.now() - this.stats.clickAt + Math.max(0, ahead);
    }
    this.refreshButtons();
  }

  onDone(msg) {
    this.stats.doneMs = this.stats.clickAt !== null ? performance.now() - this.stats.clickAt : null;
    this.transport.markComplete();
    this.endStream();
    this.ui.progress.value = 1;
    this.setStatus(`Rendered ${msg.n_notes ?? this.stats.notesReceived} notes`);
    const perfs = msg.performances || [{ performance_id: msg.performance_id, variation: 0 }];
    const mine = perfs.find((p) => p.variation === this.liveVariation) || perfs[0];
    this.performanceId = mine.performance_id;
    for (const p of perfs) {
      if (!this.live.has(p.variation)) continue;
      this.comparison.remember(p.performance_id, this.live.get(p.variation), this.livePedal.get(p.variation) || []);
    }
    const minePedal = this.livePedal.get(mine.variation) || [];
    this.plots.show(this.live.get(mine.variation) || [], `This take (${this.comparison.describeTake(mine.performance_id) || 'just rendered'})`, minePedal);
    this.loadTakes().then(() => {
      this.takes.markCurrent(mine.performance_id);
      this.plots.show(this.live.get(mine.variation) || [], this.comparison.describeTake(mine.performance_id), minePedal);
      if (perfs.length > 1) this.takes.setCompared(perfs.map((p) => p.performance_id));
      this.comparison.refresh();
    });
  }

  endStream() {
    this.sampler.resumeBackground();
    this.streaming = false;
    this.ui.cancel.hidden = true;
    this.ui.render.disabled = false;
    this.refreshButtons();
  }

  closeStream() {
    if (this.stream) this.stream.close();
    this.stream = null;
    this.streaming = false;
  }

  async cancel() {
    if (!this.job) return;
    const url = this.job.cancel_url || `/api/v1/jobs/${this.job.job_id}/cancel/`;
    try {
      const res = await postJSON(url, {}, this.cfg.csrf);
      if (res && res.state === 'cancelled' && this.streaming) {
        this.closeStream();
        this.endStream();
        this.transport.markComplete();
        this.setStatus('Cancelled');
        this.loadTakes();
      }
    } catch (e) {
      this.fail(`Cancel failed: ${e.message}`);
    }
  }

  /** Play a stored take; `at` (s) starts it there, e.g. to switch takes A/B at the same spot. */
  async replay(take, { at = 0 } = {}) {
    showMessage(this.ui, '');
    this.ctx.resume();
    this.closeStream();
    this.endStream();
    this.transport.reset();
    this.setStatus('Loading take…');
    try {
      const notes = await this.comparison.takeNotes(take);
      await this.sampler.ready;
      this.transport.addPedal(this.comparison.takePedal(take.performance_id));
      this.transport.add(notes);
      this.transport.markComplete();
      this.stats.notesReceived = this.transport.notes.length;
      this.performanceId = take.performance_id;
      this.referenceId = null;
      this.takes.markCurrent(take.performance_id);
      const label = this.comparison.describeTake(take.performance_id);
      this.setStatus(`${label || 'Take'}: ${this.transport.notes.length} notes`);
      this.plots.show(notes, label, this.comparison.takePedal(take.performance_id));
      if (at > 0) this.transport.seek(at);
      this.transport.play();
      this.refreshButtons();
    } catch (e) {
      this.fail(`The take could not be loaded: ${e.message}`);
    }
  }

  fail(text) {
    this.error = text;
    showMessage(this.ui, text);
    this.setStatus('Error');
  }

  setStatus(text) { this.ui.status.textContent = text; }

  refreshButtons() {
    const st = this.transport.state;
    const playing = st === 'playing' || st === 'waiting';
    this.ui.play.disabled = this.transport.notes.length === 0;
    this.ui.play.textContent = playing ? 'Pause' : 'Play';
    this.ui.play.setAttribute('aria-label', playing ? 'Pause' : 'Play');
    this.root.dataset.state = st;
  }

  showTime(pos) {
    this.ui.time.textContent = `${fmtTime(pos)} / ${fmtTime(this.transport.duration)}`;
  }

  frame() {
    const t = this.transport;
    const pos = t.position();
    if (!this.seeking) {
      this.ui.seek.max = String(t.duration);
      this.ui.seek.value = String(pos);
      this.showTime(pos);
    }
    if (t.state === 'playing') this.stats.peak = Math.max(this.stats.peak || 0, this.sampler.level());
    const tempo = t.tempoAt(pos);
    this.ui.tempo.textContent = tempo ? `♩ = ${Math.round(tempo)}` : '♩ = –';
    const sounding = t.state === 'playing' || t.state === 'waiting' ? t.soundingAt(pos) : [];
    this.score.setLit(sounding.map((n) => this.notemap[n.base]));
    // Count highlight events per note (a repeat lights the same element twice).
    const now = new Set(sounding.filter((n) => this.notemap[n.base]));
    for (const n of now) if (!this.shown.has(n)) this.stats.highlightsTotal += 1;
    this.shown = now;
    if (this.root.dataset.state !== t.state) {
      if (t.state === 'waiting') this.setStatus('Waiting for the render…');
      else if (this.root.dataset.state === 'waiting' && this.streaming) this.setStatus('Rendering…');
      this.refreshButtons();
    }
  }

  loop() {
    const step = () => { try { this.frame(); } catch (e) { console.error(e); } };
    const raf = () => { step(); requestAnimationFrame(raf); };
    requestAnimationFrame(raf);
    setInterval(() => { if (document.hidden) step(); }, 250);
  }
}

export function mount(root = document.getElementById('player')) {
  if (!root || root.dataset.mounted) return null;
  root.dataset.mounted = '1';
  const player = new Player(root);
  window.__player = playerProbe(player);
  // What the page's other scripts may use (not the test probe): set the controls, render
  // (optionally through another URL, with more parameters); 'player:takes' events tell them
  // when the takes are drawn.
  root.pianoPlayer = {
    setControls: (values) => player.controls.setControls(values),
    render: (options) => player.render(options),
  };
  root.dispatchEvent(new CustomEvent('player:ready', { detail: root.pianoPlayer }));
  return player;
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => mount());
else mount();
