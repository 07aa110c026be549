// Unit tests of the pure parts of static/js/player/plots.js (PCA of z, per-note spread across
// takes) and of the one-line descriptions of controls and alignment reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';

const { pca3, spread } = await import('../../static/js/player/plots.js');
const { describeControls } = await import('../../static/js/player/takes.js');
const { describeReport } = await import('../../static/js/player/references.js');

test('pca3 maps z to 0..1 per component and orders notes along the main direction', () => {
  // z varies mostly along component 2; the projection's first channel must follow it.
  const rows = Array.from({ length: 20 }, (_, k) => [0.01 * (k % 3), 0, k, 0, 0.1 * (k % 2)]);
  const p = pca3(rows);
  assert.equal(p.length, 20);
  for (const r of p) for (const v of r) assert.ok(v >= 0 && v <= 1);
  const first = p.map((r) => r[0]);
  const increasing = first.every((v, k) => k === 0 || v >= first[k - 1]);
  const decreasing = first.every((v, k) => k === 0 || v <= first[k - 1]);
  assert.ok(increasing || decreasing, first.join(','));
  assert.deepEqual([first[0], first[19]].sort(), [0, 1]);
});

test('pca3 of identical z is mid-grey, not NaN', () => {
  const p = pca3([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]);
  assert.deepEqual(p, [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]);
});

test('spread is zero where takes agree and largest where they differ', () => {
  const mk = (vel, z) => Array.from({ length: 10 }, (_, i) => ({ i, b: i, pitch: 60, tempo: 100,
    velocity: i === 7 ? vel : 64, z: i === 7 ? [z, 0, 0, 0, 0] : [0, 0, 0, 0, 0] }));
  const sp = spread([mk(40, -1), mk(90, 1), mk(64, 0)]);
  assert.equal(sp.length, 10);
  const best = sp.reduce((a, o) => (o.total > a.total ? o : a));
  assert.equal(best.i, 7);
  assert.ok(sp.filter((o) => o.i !== 7).every((o) => o.velocity === 0 && o.z === 0));
});

test('descriptions of controls and reports', () => {
  assert.equal(describeControls({ mode: 'perturb', delta: [0.5, -1, 0, 0, 2], sections: [{}],
    base_tempo_bpm: 84, expressiveness: 1.4, reference_id: 'x' }),
  'Δ 0.5 -1.0 0.0 0.0 2.0 · 1 section · ♩ 84 · ×1.4 · in a reference’s style');
  assert.equal(describeControls({}), '');
  assert.match(describeReport({ n_matched: 500, n_missing: 10, n_extra: 3, coverage: 0.98 }),
    /500 notes matched · 10 score notes not played · 3 extra notes · 98% of the score covered/);
});

test('pedal events map to steps over the score position through the notes', async () => {
  const { pedalSteps, scorePosition } = await import('../../static/js/player/plots.js');
  // four quarter notes, played at 1 s per beat but the third beat held back by half a second
  const notes = [0, 1, 2, 3].map((b) => ({ i: b, b, onset: b < 2 ? b : b + 0.5, pitch: 60, velocity: 64 }));
  const at = scorePosition(notes);
  assert.equal(at(-1), 0);
  assert.equal(at(0.5), 0.5);
  assert.equal(at(1.75), 1.5);            // halfway between beat 1 (1 s) and beat 2 (2.5 s)
  assert.equal(at(9), 3);
  const pedal = [
    { t: 0, cc: 64, value: 127, v: 0 }, { t: 0, cc: 67, value: 0, v: 0 },
    { t: 1.75, cc: 64, value: 0, v: 0 }, { t: 1.8, cc: 64, value: 64, v: 0 }, { t: 2.5, cc: 67, value: 127, v: 0 },
  ];
  const { sustain, soft } = pedalSteps(notes, pedal);
  assert.deepEqual(sustain.map((s) => s.depth), [1, 0, 64 / 127]);
  assert.equal(sustain[0].b0, 0);
  assert.equal(sustain[0].b1, 1.5);
  assert.equal(sustain[2].b1, 4);          // the last step lasts to the end of the last note's beat
  assert.deepEqual(soft.map((s) => [s.b0, s.depth]), [[0, 0], [2, 1]]);
  assert.deepEqual(pedalSteps(notes, []), { sustain: [], soft: [] });
});
