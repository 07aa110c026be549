// Sampled grand piano on plain WebAudio: Salamander samples in several velocity
// layers (static/vendor/piano/manifest.json). A note plays the sample nearest in
// pitch (playbackRate shifts it, at most a semitone or two) from the layer nearest
// in velocity that is loaded; gain follows the velocity within the layer.

const RELEASE_S = 0.12;   // time constant of the damper after note off
const PARALLEL = 6;       // concurrent downloads of the first layer (playback waits for it)
// The other layers load in the background, two at a time at low priority, and not at all while
// a render starts (`holdBackground`): with six in flight they took the browser's six connections to the
// server, and the Render request and the job's socket waited behind them (first render after
// the page opened: click -> first sound 634 ms, 385 ms once every sample was in).
const PARALLEL_BACKGROUND = 2;
const HOLD_MAX_MS = 3000; // a hold that nobody releases ends by itself

export class PianoSampler {
  /**
   * @param {AudioContext} ctx
   * @param {string|URL} baseUrl  folder holding manifest.json and v<layer>/ folders
   */
  constructor(ctx, baseUrl) {
    this.ctx = ctx;
    this.base = new URL(baseUrl, window.location.href);
    this.buffers = new Map();          // layer -> Map(pitch -> AudioBuffer)
    this.layers = [];                  // [{layer, velocity, samples:[{pitch,file}]}]
    this.voices = new Set();
    this.loadedCount = 0;
    this.totalCount = 0;
    this.out = ctx.createGain();
    this.out.gain.value = 0.6;
    const comp = ctx.createDynamicsCompressor();
    comp.threshold.value = -10;
    comp.ratio.value = 4;
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 2048;
    this.probe = new Float32Array(this.analyser.fftSize);
    this.out.connect(comp).connect(this.analyser).connect(ctx.destination);
    this.held = null;                  // {promise, release} while background loading waits
    this.ready = this.load();
  }

  /** Pause the background downloads (the layers after the first) until `resumeBackground()`,
   * or HOLD_MAX_MS: a render is starting and its request and socket come first. */
  holdBackground() {
    if (this.held) return;
    let release;
    const promise = new Promise((resolve) => { release = resolve; });
    const timer = setTimeout(() => this.resumeBackground(), HOLD_MAX_MS);
    this.held = { promise, release: () => { clearTimeout(timer); release(); } };
  }

  resumeBackground() {
    const held = this.held;
    this.held = null;
    if (held) held.release();
  }

  async load() {
    const resp = await fetch(new URL('manifest.json', this.base));
    if (!resp.ok) throw new Error(`piano samples missing (${resp.status}): run scripts/collect_assets.py`);
    const manifest = await resp.json();
    this.layers = manifest.layers.sort((a, b) => a.velocity - b.velocity);
    this.totalCount = this.layers.reduce((n, l) => n + l.samples.length, 0);
    // The layer nearest mezzo-forte first: playback may start once it is in.
    const order = [...this.layers].sort((a, b) => Math.abs(a.velocity - 64) - Math.abs(b.velocity - 64));
    await this.loadLayer(order[0], PARALLEL, false);
    this.rest = (async () => {
      for (const l of order.slice(1)) await this.loadLayer(l, PARALLEL_BACKGROUND, true);
    })();
    this.rest.catch((e) => console.warn('piano layer failed to load', e));
  }

  async loadLayer(layer, parallel, background) {
    const map = new Map();
    this.buffers.set(layer.layer, map);
    const queue = [...layer.samples];
    const worker = async () => {
      while (queue.length) {
        while (background && this.held) await this.held.promise;
        const s = queue.shift();
        if (!s) break;
        const resp = await fetch(new URL(s.file, this.base), background ? { priority: 'low' } : {});
        if (!resp.ok) throw new Error(`sample ${s.file}: ${resp.status}`);
        const buf = await this.ctx.decodeAudioData(await resp.arrayBuffer());
        map.set(s.pitch, buf);
        this.loadedCount += 1;
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    map.sorted = [...map.keys()].sort((a, b) => a - b);
  }

  /** The loaded layer nearest to `velocity` (1..127). */
  pickLayer(velocity) {
    let best = null;
    for (const l of this.layers) {
      const m = this.buffers.get(l.layer);
      if (!m || !m.sorted) continue;
      if (!best || Math.abs(l.velocity - velocity) < Math.abs(best.velocity - velocity)) best = l;
    }
    return best;
  }

  /**
   * Schedule one note.
   * @param {number} when      AudioContext time of the onset (s)
   * @param {number} pitch     MIDI pitch
   * @param {number} velocity  MIDI velocity 1..127
   * @param {number} duration  seconds until note off
   * @param {number} offset    seconds into the sample (a note started late, after a seek)
   * @param {object} [pedal]   {release: AudioContext time the dampers fall (null: held by the
   *                           sustain pedal until `release(voice, ...)` is called), tau: their
   *                           time constant (s), gain: soft-pedal factor}
   */
  play(when, pitch, velocity, duration, offset = 0, pedal = null) {
    const layer = this.pickLayer(velocity);
    if (!layer) return null;
    const map = this.buffers.get(layer.layer);
    let near = map.sorted[0];
    for (const p of map.sorted) if (Math.abs(p - pitch) < Math.abs(near - pitch)) near = p;
    const buffer = map.get(near);
    const src = this.ctx.createBufferSource();
    src.buffer = buffer;
    src.playbackRate.value = 2 ** ((pitch - near) / 12);
    const gain = this.ctx.createGain();
    const level = Math.min(1.5, Math.max(0.05, velocity / layer.velocity)) * 0.5 * (pedal?.gain ?? 1);
    gain.gain.setValueAtTime(level, when);
    src.connect(gain).connect(this.out);
    src.start(when, Math.max(0, offset));
    const keyOff = when + Math.max(0.03, duration - offset);
    const voice = { src, gain, held: false, keyOff };
    this.voices.add(voice);
    src.onended = () => { this.voices.delete(voice); gain.disconnect(); };
    if (pedal && pedal.release === null) voice.held = true;   // the sustain pedal holds it
    else this.release(voice, Math.max(keyOff, pedal?.release ?? keyOff), pedal?.tau ?? RELEASE_S);
    return voice;
  }

  /** Let the dampers fall on a voice at AudioContext time `at` (time constant `tau`, s). */
  release(voice, at, tau = RELEASE_S) {
    voice.held = false;
    const t = Math.max(at, this.ctx.currentTime);
    voice.gain.gain.setTargetAtTime(0, t, tau);
    try { voice.src.stop(t + tau * 6); } catch { /* already stopped */ }
  }

  /** Voices sounding or scheduled now; `held`: only those the sustain pedal holds with their
   *  lift still unknown; `pastRelease`: only those still sounding after their key's release
   *  has died away (what the sustain pedal does). */
  voiceCount({ held = false, pastRelease = false } = {}) {
    const late = this.ctx.currentTime - RELEASE_S * 6 - 0.05;
    let n = 0;
    for (const v of this.voices) if ((!held || v.held) && (!pastRelease || v.keyOff < late)) n += 1;
    return n;
  }

  /** Peak amplitude (0..1) of the output over the last ~46 ms. */
  level() {
    this.analyser.getFloatTimeDomainData(this.probe);
    let peak = 0;
    for (const v of this.probe) peak = Math.max(peak, Math.abs(v));
    return peak;
  }

  /** Silence every scheduled or sounding note quickly. */
  stopAll() {
    const now = this.ctx.currentTime;
    for (const v of this.voices) {
      v.gain.gain.cancelScheduledValues(now);
      v.gain.gain.setTargetAtTime(0, now, 0.02);
      try { v.src.stop(now + 0.1); } catch { /* already stopped */ }
    }
    this.voices.clear();
  }
}
