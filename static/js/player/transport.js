// The performance timeline of one take: notes sorted by onset (seconds), a clock on
// the AudioContext, and a look-ahead scheduler that feeds the sampler. Notes may keep
// arriving while it plays; one that arrives after its onset has passed is played at
// once when it is at most LATE_S late and counted in `late` otherwise.
//
// Pedal: sustain (CC64) and soft (CC67) events of the take ({t, cc, value}) arrive with the
// notes. A note whose key is released while the sustain is down (>= 96) keeps sounding until
// the pedal lifts (a change damps it); at half pedal (32..95) it dies away slowly; the soft
// pedal softens the notes struck while it is down. A note released under the pedal before the
// lift has arrived is held, and let go as soon as a lift (or the end of the take) is known.

const LOOKAHEAD_S = 0.5;   // schedule this far ahead of the clock (survives main-thread stalls)
const TICK_MS = 25;
const START_DELAY_S = 0.06;
const LEAD_IN_S = 0.03;     // a take's first play starts this long before its first note
const LATE_S = 0.1;
const HALF_PEDAL_TAU_S = 0.6;   // dampers half down: the sound dies away this slowly
const SOFT_GAIN = 0.7;          // una corda

export class Transport {
  constructor(ctx, sampler, { onEnded } = {}) {
    this.ctx = ctx;
    this.sampler = sampler;
    this.onEnded = onEnded;
    this.reset();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Forget the current take. */
  reset() {
    this.stop();
    this.notes = [];
    this.next = 0;            // index of the first note not yet scheduled or skipped
    this.complete = false;    // every note of the take has arrived
    this.end = 0;             // latest note end known (s)
    this.maxDur = 0;
    this.pos = 0;             // position while not playing (s)
    this.state = 'idle';      // idle | playing | paused | waiting | ended
    this.scheduled = 0;
    this.late = 0;
    this.stalls = 0;
    this.lateLog = [];
    this.pedal = [];          // sustain and soft events, sorted by time
    this.held = [];           // [{voice, off}] notes released under the pedal, lift not yet known
  }

  /** Add pedal events ({t, cc, value}) in any order. */
  addPedal(events) {
    for (const e of events) {
      let lo = 0;
      let hi = this.pedal.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.pedal[mid].t <= e.t) lo = mid + 1; else hi = mid;
      }
      this.pedal.splice(lo, 0, e);
    }
    if (events.length) this.releaseHeld();
  }

  /** The value of controller `cc` in force at performance time `t` (0 before any event). */
  pedalAt(cc, t) {
    let v = 0;
    for (const e of this.pedal) {
      if (e.t > t) break;
      if (e.cc === cc) v = e.value;
    }
    return v;
  }

  /** When the dampers fall on a note released at performance time `off`: {at, tau}, or null
   *  while the sustain pedal holds it and its lift has not arrived. */
  damping(off) {
    const depth = this.pedalAt(64, off);
    if (depth < 32) return { at: off, tau: null };
    if (depth < 96) return { at: off, tau: HALF_PEDAL_TAU_S };
    const lift = this.pedal.find((e) => e.cc === 64 && e.t > off && e.value < 96);
    if (lift) return { at: lift.t, tau: lift.value >= 32 ? HALF_PEDAL_TAU_S : null };
    return this.complete ? { at: Math.max(off, this.end), tau: null } : null;
  }

  releaseHeld() {
    if (!this.held.length || this.state !== 'playing') return;
    this.held = this.held.filter(({ voice, off }) => {
      const d = this.damping(off);
      if (!d) return true;
      this.sampler.release(voice, this.t0 + d.at, d.tau ?? undefined);
      return false;
    });
  }

  /** Add notes (NOTE objects of the web contract) in any order. */
  add(notes) {
    const now = this.position();
    for (const n of notes) {
      const note = { ...n, base: String(n.id).replace(/-\d+$/, '') };
      let lo = 0;
      let hi = this.notes.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.notes[mid].onset <= note.onset) lo = mid + 1; else hi = mid;
      }
      this.notes.splice(lo, 0, note);
      if (lo < this.next) {
        this.next += 1;
        if (this.state === 'playing' && note.onset >= now - LATE_S) this.schedule(note);
        else if (this.state === 'playing') this.skip(note, now);
      }
      this.end = Math.max(this.end, note.onset + note.duration);
      this.maxDur = Math.max(this.maxDur, note.duration);
    }
    if (this.state === 'waiting' && this.end > this.pos + LOOKAHEAD_S) this.play();
  }

  markComplete() {
    this.complete = true;
    this.releaseHeld();
    if (this.state === 'waiting') this.play();
  }

  get duration() { return this.end; }

  /** Performance time (s) now. */
  position() {
    if (this.state !== 'playing') return this.pos;
    return Math.max(0, this.ctx.currentTime - this.t0);
  }

  play() {
    if (this.state === 'playing') return;
    if (this.ctx.state !== 'running') this.ctx.resume();
    if (this.state === 'ended' || this.pos >= this.end && this.complete) this.pos = 0;
    // From the top, start at the first note: a rendering's first onset lies ~0.2 s in (the
    // performance's own lead-in), which would only delay the first sound after a click.
    if (this.pos === 0 && this.notes.length) this.pos = Math.max(0, this.notes[0].onset - LEAD_IN_S);
    this.t0 = this.ctx.currentTime + START_DELAY_S - this.pos;
    this.state = 'playing';
    this.next = this.indexAt(this.pos);
    // Notes already sounding at the start position come in late, mid-sample.
    for (let k = this.next - 1; k >= 0 && this.notes[k].onset > this.pos - this.maxDur; k -= 1) {
      const n = this.notes[k];
      if (n.onset + n.duration > this.pos + 0.05 && this.pos - n.onset < 1.5) this.schedule(n, this.pos - n.onset);
    }
    this.tick();
  }

  pause() {
    if (this.state !== 'playing' && this.state !== 'waiting') return;
    this.pos = this.position();
    this.stop();
    this.state = 'paused';
  }

  seek(t) {
    const wasPlaying = this.state === 'playing' || this.state === 'waiting';
    this.stop();
    this.pos = Math.max(0, Math.min(t, this.end));
    this.state = 'paused';
    if (wasPlaying) this.play();
  }

  stop() {
    this.sampler?.stopAll();
    this.held = [];
    if (this.state === 'playing') this.pos = this.position();
  }

  indexAt(t) {
    let lo = 0;
    let hi = this.notes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.notes[mid].onset < t) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  skip(note, now) {
    this.late += 1;
    if (this.lateLog.length < 50) this.lateLog.push({ id: note.id, onset: note.onset, at: now });
  }

  schedule(note, offset = 0) {
    const when = Math.max(this.ctx.currentTime, this.t0 + note.onset + Math.max(0, offset));
    const off = note.onset + note.duration;
    const d = this.damping(off);
    const pedal = {
      release: d ? this.t0 + d.at : null,
      tau: d?.tau ?? undefined,
      gain: this.pedalAt(67, note.onset) >= 64 ? SOFT_GAIN : 1,
    };
    const voice = this.sampler.play(when, note.pitch, note.velocity, note.duration, offset, pedal);
    if (!voice) return;
    this.scheduled += 1;
    if (voice.held) this.held.push({ voice, off });
  }

  tick() {
    if (this.state !== 'playing') return;
    let now = this.position();
    const due = this.notes[this.next];
    if (due && due.onset < now - LATE_S) {
      // The page stalled longer than the look-ahead: hold the timeline back rather than
      // drop the notes that fell due meanwhile.
      this.t0 += now - due.onset;
      this.stalls += 1;
      now = this.position();
    }
    const horizon = now + LOOKAHEAD_S;
    while (this.next < this.notes.length && this.notes[this.next].onset < horizon) {
      const n = this.notes[this.next];
      this.next += 1;
      if (n.onset >= now - LATE_S) this.schedule(n); else this.skip(n, now);
    }
    if (now >= this.end) {
      if (this.complete) {
        this.pos = this.end;
        this.state = 'ended';
        this.onEnded?.();
      } else {
        // The render has not caught up with playback: hold the clock until it does.
        this.pos = now;
        this.state = 'waiting';
      }
    }
  }

  /** Notes sounding at performance time `t` (s). */
  soundingAt(t) {
    const out = [];
    for (let k = this.indexAt(t + 1e-6) - 1; k >= 0; k -= 1) {
      const n = this.notes[k];
      if (n.onset < t - this.maxDur) break;
      if (n.onset + n.duration > t) out.push(n);
    }
    return out;
  }

  /** Tempo (bpm) of the latest note begun by `t`, or null. */
  tempoAt(t) {
    const k = this.indexAt(t + 1e-6) - 1;
    return k >= 0 ? this.notes[k].tempo : (this.notes[0]?.tempo ?? null);
  }
}
