// Unit tests of static/js/player/transport.js under node's test runner: a hand-driven
// clock stands in for AudioContext.currentTime and a recorder for the sampler.
import { test } from 'node:test';
import assert from 'node:assert/strict';

const { Transport } = await import('../../static/js/player/transport.js');

function rig() {
  const ctx = { currentTime: 10, state: 'running', resume() {} };
  const played = [];
  const sampler = { play: (when, pitch) => { played.push({ when, pitch }); return {}; }, stopAll() { played.stopped = (played.stopped || 0) + 1; } };
  const t = new Transport(ctx, sampler);
  clearInterval(t.timer);   // ticks are driven by hand
  const at = (sec) => { ctx.currentTime = sec; t.tick(); };
  const run = (sec) => { while (ctx.currentTime < sec) at(Math.min(sec, ctx.currentTime + 0.025)); };
  return { ctx, played, t, at, run };
}
const note = (id, onset, pitch = 60, duration = 0.5) => ({ i: 0, id, pitch, onset, duration, velocity: 64, tempo: 100, z: [] });

test('notes are scheduled a look-ahead early, at their onset on the audio clock', () => {
  const { t, played, at } = rig();
  t.add([note('a-1', 0), note('b-1', 1, 62), note('c-1', 2, 64)]);
  t.play();                                  // at audio time 10 (+ a start delay)
  const t0 = t.t0;
  assert.equal(played.length, 1);
  at(t0 + 0.6);
  assert.equal(played.length, 2);
  assert.ok(Math.abs(played[1].when - (t0 + 1)) < 1e-9);
  at(t0 + 1.6);
  assert.equal(played.length, 3);
});

test('a note arriving after the scheduler passed its onset is still played if barely late', () => {
  const { t, played, at } = rig();
  t.add([note('a-1', 0), note('c-1', 2)]);
  t.play();
  at(t.t0 + 1.8);                            // c scheduled
  t.add([note('b-1', 1.75, 61)]);            // onset 0.05 s ago: play now
  t.add([note('x-1', 1.0, 50)]);             // 0.8 s ago: counted late
  assert.deepEqual(played.map((p) => p.pitch), [60, 60, 61]);
  assert.equal(t.late, 1);
  assert.deepEqual(t.notes.map((n) => n.onset), [0, 1.0, 1.75, 2]);
});

test('playback waits for the stream at the end of the notes known so far, then resumes', () => {
  const { t, at, run } = rig();
  t.add([note('a-1', 0, 60, 0.5)]);
  t.play();
  at(t.t0 + 0.6);
  assert.equal(t.state, 'waiting');
  const pos = t.position();
  t.add([note('b-1', 0.7), note('c-1', 1.5)]);
  assert.equal(t.state, 'playing');
  assert.ok(Math.abs(t.position() - pos) < 0.1);
  t.markComplete();
  run(t.t0 + 2.1);
  assert.equal(t.state, 'ended');
  assert.equal(t.stalls, 0);
});

test('seek and pause silence what sounds and move the clock; a page stall holds the timeline', () => {
  const { t, played, ctx, at } = rig();
  t.add([0, 1, 2, 3, 4].map((s) => note(`n${s}-1`, s, 60 + s)));
  t.markComplete();
  t.play();
  t.seek(3);
  assert.ok(played.stopped >= 1);
  assert.equal(t.state, 'playing');
  assert.ok(Math.abs(t.position() - 3) < 0.1);
  t.pause();
  const p = t.position();
  ctx.currentTime += 5;
  assert.equal(t.position(), p);
  t.play();
  const before = played.length;
  at(ctx.currentTime + 2);                   // the tick was 2 s late
  assert.equal(t.stalls, 1);
  assert.equal(played.length, before + 1, 'the note due meanwhile is played, not dropped');
  assert.equal(t.late, 0);
});

test('soundingAt and tempoAt follow the performance', () => {
  const { t } = rig();
  t.add([{ ...note('a-1', 0, 60, 2), tempo: 90 }, { ...note('b-2', 1, 62, 0.5), tempo: 110 }]);
  assert.deepEqual(t.soundingAt(1.2).map((n) => n.base).sort(), ['a', 'b']);
  assert.deepEqual(t.soundingAt(1.6).map((n) => n.base), ['a']);
  assert.equal(t.tempoAt(0.5), 90);
  assert.equal(t.tempoAt(1.0), 110);
});

test('a take played from the top starts at its first note, not at the lead-in before it', () => {
  const { t, played } = rig();
  t.add([note('a-1', 0.25), note('b-1', 0.75, 62)]);
  t.play();                                  // audio clock at 10
  assert.equal(played.length, 1);
  assert.ok(Math.abs(played[0].when - 10.09) < 1e-9, played[0].when);   // start delay .06 + lead-in .03
  assert.ok(Math.abs(t.position() - (0.22 - 0.06)) < 1e-9);   // the clock reaches 0.22 s at the start delay
});
