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
