// Comparing takes, for the Player (static/js/player.js), which owns one Comparison: notes of
// stored takes (cached), the plots of where ticked takes differ, A/B switching between them (or
// between the variations of a render still streaming) at the current position, and playing a
// reference performance through the same transport.
import { getJSON } from './api.js';
import { showMessage } from './ui.js';

export class Comparison {
  /** `player`: the Player whose takes, transport, plots and live render this compares. */
  constructor(player) {
    this.player = player;
    this.noteCache = new Map();   // performance id -> notes
    this.pedalCache = new Map();  // performance id -> pedal events
    this.abSwitches = 0;          // A/B switches between stored takes
  }

  describeTake(performanceId) {
    const { takes } = this.player.takes;
    const k = takes.findIndex((t) => t.performance_id === performanceId);
    if (k < 0) return '';
    const t = takes[k];
    return `Take ${k + 1}${t.variations > 1 ? ` (variation ${t.variation + 1} of ${t.variations})` : ''}`;
  }

  /** Keep the notes and pedal events of a take just rendered (no download to replay it). */
  remember(performanceId, notes, pedal) {
    this.noteCache.set(performanceId, notes);
    this.pedalCache.set(performanceId, pedal);
  }

  async takeNotes(take) {
    if (!this.noteCache.has(take.performance_id)) {
      const data = await getJSON(take.notes_url);
      this.remember(take.performance_id, data.notes || [], data.pedal || []);
    }
    return this.noteCache.get(take.performance_id);
  }

  takePedal(performanceId) { return this.pedalCache.get(performanceId) || []; }

  /** Draw where the ticked takes differ (and enable A/B between them). */
  async compare(selected) {
    this.refresh();
    try {
      const notes = await Promise.all(selected.map((t) => this.takeNotes(t)));
      this.player.plots.showComparison(notes, selected.map((t) => this.describeTake(t.performance_id)));
    } catch (e) {
      this.player.fail(`The takes could not be compared: ${e.message}`);
    }
  }

  /** The A/B button and its line: enabled with two takes ticked, or two variations streaming. */
  refresh() {
    const p = this.player;
    const n = p.streaming ? p.live.size : p.takes.selected().length;
    p.ui.ab.disabled = n < 2;
    if (p.streaming && p.live.size > 1) p.ui.abInfo.textContent = `hearing variation ${p.liveVariation + 1} of ${p.live.size}`;
    else if (n >= 2) {
      const cur = this.describeTake(p.performanceId);
      p.ui.abInfo.textContent = `${n} takes compared${cur ? `; hearing ${cur}` : ''}`;
    } else p.ui.abInfo.textContent = 'Tick Compare on two takes (or render several at once) to switch between them.';
  }

  /** A/B: go on with the next compared take (or streaming variation) at the same position. */
  async switchAB() {
    const p = this.player;
    const t = p.transport;
    const at = t.position();
    if (p.streaming && p.live.size > 1) {
      const wasPlaying = t.state === 'playing' || t.state === 'waiting';
      p.liveVariation = (p.liveVariation + 1) % p.live.size;
      t.reset();
      t.addPedal(p.livePedal.get(p.liveVariation) || []);
      t.add(p.live.get(p.liveVariation) || []);
      t.seek(at);
      if (wasPlaying) t.play();
      this.refresh();
      p.refreshButtons();
      return;
    }
    const sel = p.takes.selected();
    if (sel.length < 2) return;
    const k = sel.findIndex((s) => s.performance_id === p.performanceId);
    await p.replay(sel[(k + 1) % sel.length], { at });
    this.abSwitches += 1;
    this.refresh();
  }

  /** Play a reference performance (its own MIDI notes) through the player. */
  async playReference(ref) {
    const p = this.player;
    const t = p.transport;
    showMessage(p.ui, '');
    p.ctx.resume();
    p.closeStream();
    p.endStream();
    t.reset();
    try {
      const data = await getJSON(ref.notes_url);
      await p.sampler.ready;
      t.add(data.notes || []);
      t.markComplete();
      p.performanceId = null;
      p.referenceId = ref.reference_id;
      p.takes.markCurrent(null);
      p.setStatus(`Reference “${ref.title}”: ${t.notes.length} notes`);
      t.play();
      p.refreshButtons();
    } catch (e) {
      p.fail(`The reference could not be played: ${e.message}`);
    }
  }
}
