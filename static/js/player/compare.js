// Comparing takes, mixed into the Player (static/js/player.js): notes of stored takes (cached),
// the plots of where ticked takes differ, A/B switching between them (or between the
// variations of a render still streaming) at the current position, and playing a reference
// performance through the same transport.
import { getJSON } from './api.js';
import { showMessage } from './ui.js';

export const compareMethods = {
  describeTake(performanceId) {
    const k = this.takes.takes.findIndex((t) => t.performance_id === performanceId);
    if (k < 0) return '';
    const t = this.takes.takes[k];
    return `Take ${k + 1}${t.variations > 1 ? ` (variation ${t.variation + 1} of ${t.variations})` : ''}`;
  },

  async takeNotes(take) {
    if (!this.noteCache.has(take.performance_id)) {
      const data = await getJSON(take.notes_url);
      this.noteCache.set(take.performance_id, data.notes || []);
      this.pedalCache.set(take.performance_id, data.pedal || []);
    }
    return this.noteCache.get(take.performance_id);
  },

  /** Draw where the ticked takes differ (and enable A/B between them). */
  async compare(selected) {
    this.refreshAB();
    try {
      const notes = await Promise.all(selected.map((t) => this.takeNotes(t)));
      this.plots.showComparison(notes, selected.map((t) => this.describeTake(t.performance_id)));
    } catch (e) {
      this.fail(`The takes could not be compared: ${e.message}`);
    }
  },

  refreshAB() {
    const n = this.streaming ? this.live.size : this.takes.selected().length;
    this.ui.ab.disabled = n < 2;
    if (this.streaming && this.live.size > 1) this.ui.abInfo.textContent = `hearing variation ${this.liveVariation + 1} of ${this.live.size}`;
    else if (n >= 2) {
      const cur = this.describeTake(this.performanceId);
      this.ui.abInfo.textContent = `${n} takes compared${cur ? `; hearing ${cur}` : ''}`;
    } else this.ui.abInfo.textContent = 'Tick Compare on two takes (or render several at once) to switch between them.';
  },

  /** A/B: go on with the next compared take (or streaming variation) at the same position. */
  async switchAB() {
    const at = this.transport.position();
    if (this.streaming && this.live.size > 1) {
      const wasPlaying = this.transport.state === 'playing' || this.transport.state === 'waiting';
      this.liveVariation = (this.liveVariation + 1) % this.live.size;
      this.transport.reset();
      this.transport.addPedal(this.livePedal.get(this.liveVariation) || []);
      this.transport.add(this.live.get(this.liveVariation) || []);
      this.transport.seek(at);
      if (wasPlaying) this.transport.play();
      this.refreshAB();
      this.refreshButtons();
      return;
    }
    const sel = this.takes.selected();
    if (sel.length < 2) return;
    const k = sel.findIndex((t) => t.performance_id === this.performanceId);
    await this.replay(sel[(k + 1) % sel.length], { at });
    this.abSwitches = (this.abSwitches || 0) + 1;
    this.refreshAB();
  },

  /** Play a reference performance (its own MIDI notes) through the player. */
  async playReference(ref) {
    showMessage(this.ui, '');
    this.ctx.resume();
    this.closeStream();
    this.endStream();
    this.transport.reset();
    try {
      const data = await getJSON(ref.notes_url);
      await this.sampler.ready;
      this.transport.add(data.notes || []);
      this.transport.markComplete();
      this.performanceId = null;
      this.referenceId = ref.reference_id;
      this.takes.markCurrent(null);
      this.setStatus(`Reference “${ref.title}”: ${this.transport.notes.length} notes`);
      this.transport.play();
      this.refreshButtons();
    } catch (e) {
      this.fail(`The reference could not be played: ${e.message}`);
    }
  },
};
