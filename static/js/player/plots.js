// Plots of performances, on canvas: tempo curve and velocity per note over the score
// position, the sustain and soft pedal under them, the interpretation sequence z over a piano
// roll coloured by a 3-d PCA of z (the paper's Figure 6), and, for several takes of one score,
// where they differ most (Figure 7): the per-note spread across takes of velocity, tempo and z,
// highlighted on the roll. Pure functions (pca3, spread, pedalSteps) are exported for node tests.

const PAD = { l: 44, r: 8, t: 18, b: 20 };

/** Top-3 principal components of rows (N x D): projections scaled to 0..1 per component. */
export function pca3(rows) {
  const n = rows.length;
  if (!n) return [];
  const d = rows[0].length;
  const mean = new Array(d).fill(0);
  for (const r of rows) for (let k = 0; k < d; k += 1) mean[k] += r[k] / n;
  const cov = Array.from({ length: d }, () => new Array(d).fill(0));
  for (const r of rows) {
    for (let a = 0; a < d; a += 1) for (let b = 0; b < d; b += 1) cov[a][b] += (r[a] - mean[a]) * (r[b] - mean[b]) / n;
  }
  const comps = [];
  for (let c = 0; c < Math.min(3, d); c += 1) {   // power iteration with deflation
    let v = Array.from({ length: d }, (_, k) => 1 + k * 0.1 + c);
    let lambda = 0;
    for (let it = 0; it < 100; it += 1) {
      const w = cov.map((row) => row.reduce((s, x, k) => s + x * v[k], 0));
      const norm = Math.hypot(...w);
      if (norm < 1e-12) break;
      v = w.map((x) => x / norm);
      lambda = norm;
    }
    comps.push(v);
    for (let a = 0; a < d; a += 1) for (let b = 0; b < d; b += 1) cov[a][b] -= lambda * v[a] * v[b];
  }
  const proj = rows.map((r) => comps.map((v) => v.reduce((s, x, k) => s + x * (r[k] - mean[k]), 0)));
  for (let c = 0; c < 3; c += 1) {
    const vals = proj.map((p) => p[c] ?? 0);
    const lo = Math.min(...vals);
    const hi = Math.max(...vals);
    for (const p of proj) p[c] = hi - lo > 1e-9 ? ((p[c] ?? 0) - lo) / (hi - lo) : 0.5;
  }
  return proj;
}

function sd(xs) {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length);
}

/**
 * Per score note, how much takes differ: {i, b, pitch, velocity, tempo, z, total}, where
 * velocity is the sd of velocity (MIDI units), tempo the sd of log2 tempo (octaves of speed),
 * z the mean sd of the 5 z components, and total a sum of the three, each over its median.
 */
export function spread(takes) {
  const byIndex = new Map();
  takes.forEach((notes, t) => {
    for (const n of notes) {
      if (!byIndex.has(n.i)) byIndex.set(n.i, []);
      byIndex.get(n.i)[t] = n;
    }
  });
  const out = [];
  for (const [i, ns] of byIndex) {
    const all = ns.filter(Boolean);
    if (all.length < 2) continue;
    const z = all[0].z && all[0].z.length ? all[0].z.map((_, k) => sd(all.map((n) => (n.z || [])[k] || 0))) : [0];
    out.push({ i, b: all[0].b ?? i, pitch: all[0].pitch,
      velocity: sd(all.map((n) => n.velocity)),
      tempo: sd(all.map((n) => Math.log2(Math.max(n.tempo || 1, 1)))),
      z: z.reduce((s, x) => s + x, 0) / z.length });
  }
  out.sort((a, b) => a.b - b.b || a.i - b.i);
  const median = (key) => {
    const v = out.map((o) => o[key]).sort((a, b) => a - b);
    return v.length ? Math.max(v[v.length >> 1], 1e-6) : 1;
  };
  const m = { velocity: median('velocity'), tempo: median('tempo'), z: median('z') };
  for (const o of out) o.total = o.velocity / m.velocity + o.tempo / m.tempo + o.z / m.z;
  return out;
}

function setup(canvas, height) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(320, canvas.parentElement ? canvas.parentElement.clientWidth : 640);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.fillStyle = '#fff';
  g.fillRect(0, 0, w, height);
  g.font = '11px system-ui, sans-serif';
  return { g, w, h: height };
}

function axes(g, w, h, title, yLo, yHi, unit) {
  g.strokeStyle = '#bbb';
  g.beginPath();
  g.moveTo(PAD.l, PAD.t);
  g.lineTo(PAD.l, h - PAD.b);
  g.lineTo(w - PAD.r, h - PAD.b);
  g.stroke();
  g.fillStyle = '#333';
  g.fillText(title, PAD.l + 4, 12);
  g.fillStyle = '#777';
  g.fillText(`${Math.round(yHi)}${unit}`, 2, PAD.t + 8);
  g.fillText(`${Math.round(yLo)}${unit}`, 2, h - PAD.b);
  g.fillText('score position (quarter notes) →', w - PAD.r - 190, h - 5);
}

function scales(notes, w, h, yLo, yHi) {
  const b0 = Math.min(...notes.map((n) => n.b ?? n.i));
  const b1 = Math.max(...notes.map((n) => (n.b ?? n.i))) + 1;
  return {
    x: (b) => PAD.l + ((b - b0) / Math.max(b1 - b0, 1e-9)) * (w - PAD.l - PAD.r),
    y: (v) => h - PAD.b - ((v - yLo) / Math.max(yHi - yLo, 1e-9)) * (h - PAD.t - PAD.b),
    perBeat: (w - PAD.l - PAD.r) / Math.max(b1 - b0, 1e-9),
  };
}

/** Tempo (bpm) over the score position; returns the points drawn. */
export function drawTempo(canvas, notes) {
  const { g, w, h } = setup(canvas, 150);
  const pts = new Map();
  for (const n of notes) if (n.tempo > 0) pts.set(n.b ?? n.i, n.tempo);
  const xs = [...pts.keys()].sort((a, b) => a - b);
  if (!xs.length) return 0;
  const ys = xs.map((x) => pts.get(x));
  const lo = Math.floor(Math.min(...ys) * 0.9);
  const hi = Math.ceil(Math.max(...ys) * 1.1);
  axes(g, w, h, 'Tempo (♩/min)', lo, hi, '');
  const s = scales(notes, w, h, lo, hi);
  g.strokeStyle = '#c0392b';
  g.lineWidth = 1.5;
  g.beginPath();
  xs.forEach((x, k) => (k ? g.lineTo(s.x(x), s.y(ys[k])) : g.moveTo(s.x(x), s.y(ys[k]))));
  g.stroke();
  return xs.length;
}

/** Velocity per note over the score position; returns the dots drawn. */
export function drawVelocity(canvas, notes) {
  const { g, w, h } = setup(canvas, 150);
  if (!notes.length) return 0;
  axes(g, w, h, 'Velocity per note', 0, 127, '');
  const s = scales(notes, w, h, 0, 127);
  g.fillStyle = 'rgba(41, 98, 163, .7)';
  for (const n of notes) g.fillRect(s.x(n.b ?? n.i) - 1.5, s.y(n.velocity) - 1.5, 3, 3);
  return notes.length;
}

/** Score position (quarter notes) of a performance time (s), interpolated between the onsets of
 *  the notes (NOTE objects with onset in seconds and b); before the first / after the last note,
 *  that note's position. */
export function scorePosition(notes) {
  const pts = notes.filter((n) => Number.isFinite(n.onset)).map((n) => [n.onset, n.b ?? n.i])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return (t) => {
    if (!pts.length) return 0;
    if (t <= pts[0][0]) return pts[0][1];
    let lo = 0;
    let hi = pts.length - 1;
    if (t >= pts[hi][0]) return pts[hi][1];
    while (hi - lo > 1) { const m = (lo + hi) >> 1; if (pts[m][0] <= t) lo = m; else hi = m; }
    const [t0, b0] = pts[lo];
    const [t1, b1] = pts[hi];
    return t1 > t0 ? b0 + (b1 - b0) * (t - t0) / (t1 - t0) : b0;
  };
}

/** Pedal events ({t (s), cc 64 sustain / 67 soft, value 0..127}) of one take as steps over the
 *  score position: {sustain: [{b0, b1, depth 0..1}], soft: [...]}, each step lasting until the
 *  next event of its pedal (the last one until the last note). */
export function pedalSteps(notes, pedal) {
  const at = scorePosition(notes);
  const end = notes.length ? Math.max(...notes.map((n) => n.b ?? n.i)) + 1 : 0;
  const steps = (cc) => {
    const ev = pedal.filter((e) => e.cc === cc).sort((a, b) => a.t - b.t);
    return ev.map((e, k) => ({ b0: at(e.t), b1: k + 1 < ev.length ? at(ev[k + 1].t) : end, depth: e.value / 127 }))
      .filter((s) => s.b1 > s.b0 || s.depth > 0);
  };
  return { sustain: steps(64), soft: steps(67) };
}

/** The sustain pedal's depth (filled) and the soft pedal (a band along the bottom) over the score
 *  position; returns the number of sustain steps drawn with the pedal down. */
export function drawPedal(canvas, notes, pedal) {
  const { g, w, h } = setup(canvas, 70);
  if (!notes.length) return 0;
  axes(g, w, h, pedal.length ? 'Sustain pedal (depth) and soft pedal (band)' : 'No pedal', 0, 100, '%');
  const s = scales(notes, w, h, 0, 1);
  const { sustain, soft } = pedalSteps(notes, pedal);
  g.fillStyle = 'rgba(39, 174, 96, .55)';
  let down = 0;
  for (const st of sustain) {
    if (st.depth <= 0) continue;
    down += 1;
    g.fillRect(s.x(st.b0), s.y(st.depth), Math.max(1, s.x(st.b1) - s.x(st.b0)), s.y(0) - s.y(st.depth));
  }
  g.fillStyle = 'rgba(142, 68, 173, .6)';
  for (const st of soft) {
    if (st.depth > 0) g.fillRect(s.x(st.b0), s.y(0) - 4, Math.max(1, s.x(st.b1) - s.x(st.b0)), 4);
  }
  return down;
}

function rollFrame(canvas, notes, title) {
  const { g, w, h } = setup(canvas, 220);
  const pitches = notes.map((n) => n.pitch);
  const lo = Math.min(...pitches) - 1;
  const hi = Math.max(...pitches) + 1;
  axes(g, w, h, title, lo, hi, '');
  const s = scales(notes, w, h, lo, hi);
  const rowH = Math.max(1.5, (h - PAD.t - PAD.b) / (hi - lo));
  // Sounding length in beats (at the note's tempo), at most 2 beats so long notes do not hide the rest.
  const len = (n) => Math.max(2, Math.min(2, (n.duration || 0.2) * (n.tempo || 100) / 60) * s.perBeat);
  return { g, s, rowH, len };
}

/** Piano roll coloured by the PCA of z (Figure 6); returns the number of distinct colours. */
export function drawZRoll(canvas, notes) {
  const withZ = notes.filter((n) => n.z && n.z.length);
  if (!withZ.length) { setup(canvas, 220); return 0; }
  const { g, s, rowH, len } = rollFrame(canvas, withZ, 'Interpretation z over the piano roll (colour: 3-d PCA of z)');
  const rgb = pca3(withZ.map((n) => n.z));
  const colours = new Set();
  withZ.forEach((n, k) => {
    const c = `rgb(${rgb[k].map((v) => Math.round(30 + 200 * v)).join(',')})`;
    colours.add(c);
    g.fillStyle = c;
    g.fillRect(s.x(n.b ?? n.i), s.y(n.pitch) - rowH / 2, len(n), rowH);
  });
  return colours.size;
}

/** Where takes differ most (Figure 7): the roll shaded by the per-note spread, the top 10 %
 *  outlined, and the spread curve below; returns {notes, top, maxBeat}. */
export function drawSpread(canvas, takes) {
  const sp = spread(takes);
  if (!sp.length) { setup(canvas, 220); return { notes: 0, top: 0, maxBeat: null }; }
  const first = new Map(takes[0].map((n) => [n.i, n]));
  const notes = sp.map((o) => ({ ...first.get(o.i), spread: o.total }));
  const { g, s, rowH, len } = rollFrame(canvas, notes, `Where ${takes.length} takes differ most (velocity, tempo and z spread per note)`);
  const max = Math.max(...sp.map((o) => o.total), 1e-9);
  const cut = [...sp.map((o) => o.total)].sort((a, b) => b - a)[Math.max(0, Math.floor(sp.length / 10) - 1)];
  let top = 0;
  for (const n of notes) {
    const a = n.spread / max;
    g.fillStyle = `rgba(${Math.round(255 * a)}, ${Math.round(80 * (1 - a))}, ${Math.round(200 * (1 - a))}, ${0.25 + 0.75 * a})`;
    g.fillRect(s.x(n.b ?? n.i), s.y(n.pitch) - rowH / 2, len(n), rowH);
    if (n.spread >= cut) {
      top += 1;
      g.strokeStyle = '#000';
      g.strokeRect(s.x(n.b ?? n.i) - 1, s.y(n.pitch) - rowH / 2 - 1, len(n) + 2, rowH + 2);
    }
  }
  // Spread curve (moving average over ~16 notes) along the bottom.
  const k = 8;
  g.strokeStyle = 'rgba(192, 57, 43, .9)';
  g.beginPath();
  sp.forEach((o, j) => {
    const win = sp.slice(Math.max(0, j - k), j + k + 1);
    const v = win.reduce((t, x) => t + x.total, 0) / win.length / max;
    const y = canvas.clientHeight - PAD.b - v * 50;
    if (j) g.lineTo(s.x(o.b), y); else g.moveTo(s.x(o.b), y);
  });
  g.stroke();
  const best = sp.reduce((a, o) => (o.total > a.total ? o : a), sp[0]);
  return { notes: sp.length, top, maxBeat: best.b };
}

export class PlotsPanel {
  constructor(root) {
    this.root = root;
    this.stats = {};
    const mk = (cls) => { const c = document.createElement('canvas'); c.className = cls; return c; };
    this.title = document.createElement('p');
    this.title.className = 'pr-plots-title';
    this.title.textContent = 'Render or play a take to see its tempo, velocities and interpretation.';
    this.tempo = mk('pr-plot-tempo');
    this.velocity = mk('pr-plot-velocity');
    this.pedal = mk('pr-plot-pedal');
    this.roll = mk('pr-plot-zroll');
    this.compareTitle = document.createElement('p');
    this.compareTitle.className = 'pr-plots-title';
    this.compare = mk('pr-plot-spread');
    this.compare.hidden = true;
    const h = document.createElement('h2');
    h.textContent = 'Plots';
    root.replaceChildren(h, this.title, this.tempo, this.velocity, this.pedal, this.roll, this.compareTitle,
      this.compare);
  }

  /** Draw one take (NOTE objects with b, onset, tempo, velocity, z; its PEDAL events). */
  show(notes, label, pedal = []) {
    const ns = notes.filter((n) => n.i >= 0);
    if (!ns.length) return;
    this.title.textContent = label || '';
    this.stats.tempo = drawTempo(this.tempo, ns);
    this.stats.velocity = drawVelocity(this.velocity, ns);
    this.stats.pedalDown = drawPedal(this.pedal, ns, pedal);
    this.stats.colours = drawZRoll(this.roll, ns);
    this.stats.label = label;
  }

  /** Draw where several takes (arrays of NOTE objects) differ. */
  showComparison(takes, labels) {
    if (takes.length < 2) {
      this.compare.hidden = true;
      this.compareTitle.textContent = 'Tick two or more takes (Compare) to see where they differ.';
      return;
    }
    this.compare.hidden = false;
    const res = drawSpread(this.compare, takes);
    this.stats.spread = res;
    this.compareTitle.textContent = `Compared: ${labels.join(', ')}. They differ most around score position ${res.maxBeat === null ? '–' : res.maxBeat.toFixed(1)} (quarter notes); outlined: the 10 % of notes that differ most.`;
  }
}
