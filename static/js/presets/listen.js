// A preset's page: play the take the preset was saved from (no engraving, just the piano),
// with the player's own sampler and transport. For tests, window.__presetListen exposes
// state, notesReceived, peakLevel, position() and error.
import { getJSON } from '../player/api.js';
import { PianoSampler } from '../player/sampler.js';
import { Transport } from '../player/transport.js';

const SAMPLES = new URL('../../vendor/piano/', import.meta.url);

function mount(root) {
  const button = root.querySelector('.preset-listen-play');
  const status = root.querySelector('.preset-listen-status');
  const st = { notesReceived: 0, peak: 0, error: null, transport: null };
  let ctx = null;
  let sampler = null;
  let loaded = false;

  const refresh = () => {
    const t = st.transport;
    const playing = t && (t.state === 'playing' || t.state === 'waiting');
    button.textContent = playing ? 'Pause' : 'Play the take';
  };

  button.addEventListener('click', async () => {
    if (!ctx) {
      ctx = new (window.AudioContext || window.webkitAudioContext)({ latencyHint: 'interactive' });
      sampler = new PianoSampler(ctx, SAMPLES);
      st.transport = new Transport(ctx, sampler, { onEnded: refresh });
      setInterval(() => {
        if (st.transport.state === 'playing') st.peak = Math.max(st.peak, sampler.level());
      }, 50);
    }
    ctx.resume();
    const t = st.transport;
    if (t.state === 'playing' || t.state === 'waiting') { t.pause(); refresh(); return; }
    try {
      if (!loaded) {
        status.textContent = 'Loading…';
        const data = await getJSON(root.dataset.notesUrl);
        await sampler.ready;
        t.addPedal(data.pedal || []);
        t.add(data.notes || []);
        t.markComplete();
        st.notesReceived = t.notes.length;
        loaded = true;
      }
      if (t.state === 'ended') t.seek(0);
      t.play();
      status.textContent = `${st.notesReceived} notes`;
    } catch (e) {
      st.error = e.message;
      status.textContent = `The take could not be played: ${e.message}`;
    }
    refresh();
  });

  window.__presetListen = {
    get state() { return st.transport ? st.transport.state : 'idle'; },
    get notesReceived() { return st.notesReceived; },
    get peakLevel() { return st.peak; },
    get error() { return st.error; },
    position: () => (st.transport ? st.transport.position() : 0),
  };
}

const root = document.getElementById('preset-listen');
if (root) mount(root);
