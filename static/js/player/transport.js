// The performance timeline of one take: notes sorted by onset (seconds), a clock on
// the AudioContext, and a look-ahead scheduler that feeds the sampler. Notes may keep
// arriving while it plays; one that arrives after its onset has passed is played at
// once when it is at most LATE_S late and counted in `late` otherwise.

const LOOKAHEAD_S = 0.5;   // schedule this far ahead of the clock (survives main-thread stalls)
const TICK_MS = 25;
const START_DELAY_S = 0.06;
const LATE_S = 0.1;

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
    if (this.sampler.play(when, note.pitch, note.velocity, note.duration, offset)) this.scheduled += 1;
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
