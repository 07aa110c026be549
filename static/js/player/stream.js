// WebSocket client of one render job: delivers "notes" chunks in seq order exactly
// once, buffers chunks that arrive early, and reconnects with ?from=<next seq>.
import { wsURL } from './api.js';

export class JobStream {
  /**
   * @param {string} path  ws path from the render response, e.g. "/ws/jobs/<uuid>/"
   * @param {object} handlers  onNotes(notes, seq, pedal), onState(state, message), onQueue(msg), onDone(msg), onError(text)
   */
  // A server restart (a deploy) can take a minute on a busy machine: the delay between tries
  // doubles from 0.2 s to 4 s, and 40 tries wait about two and a half minutes in all.
  constructor(path, handlers, { maxRetries = 40 } = {}) {
    this.path = path;
    this.h = handlers;
    this.nextSeq = 0;
    this.pending = new Map();
    this.finished = false;
    this.retries = 0;
    this.maxRetries = maxRetries;
    this.reconnects = 0;
    this.duplicates = 0;
    this.delivered = 0;
    this.doneMsg = null;
    this.ws = null;
    this.connect();
  }

  connect() {
    const params = this.nextSeq > 0 ? { from: this.nextSeq } : {};
    const ws = new WebSocket(wsURL(this.path, params));
    this.ws = ws;
    ws.onopen = () => { this.retries = 0; };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = () => {
      if (this.ws !== ws || this.finished) return;
      if (this.retries >= this.maxRetries) {
        this.finish();
        this.h.onError?.('Lost the connection to the server.');
        return;
      }
      const delay = Math.min(4000, 200 * 2 ** this.retries);
      this.retries += 1;
      this.reconnects += 1;
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  receive(raw) {
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    if (msg.type === 'notes') this.acceptChunk(msg.seq, msg.notes || [], msg.pedal || []);
    else if (msg.type === 'state') {
      this.h.onState?.(msg.state, msg.message || null);
      if (['failed', 'cancelled'].includes(msg.state)) this.finish();
    } else if (msg.type === 'queue') {
      this.h.onQueue?.(msg);
    } else if (msg.type === 'done') {
      this.doneMsg = msg;
      this.maybeDone();
    } else if (msg.type === 'error') {
      this.h.onError?.(msg.message || 'Server error');
    }
  }

  acceptChunk(seq, notes, pedal = []) {
    if (!Number.isInteger(seq) || seq < this.nextSeq || this.pending.has(seq)) {
      this.duplicates += 1;
      return;
    }
    this.pending.set(seq, { notes, pedal });
    while (this.pending.has(this.nextSeq)) {
      const chunk = this.pending.get(this.nextSeq);
      this.pending.delete(this.nextSeq);
      this.nextSeq += 1;
      this.delivered += chunk.notes.length;
      this.h.onNotes?.(chunk.notes, this.nextSeq - 1, chunk.pedal);
    }
    if (this.doneMsg) this.maybeDone();
  }

  // "done" counts only once every note has been delivered; a gap means we missed a
  // chunk, so ask the server to replay from the first missing seq.
  maybeDone() {
    const want = this.doneMsg.n_notes;
    if (Number.isInteger(want) && this.delivered < want) {
      if (this.ws && !this.gapTimer) {
        this.gapTimer = setTimeout(() => { this.gapTimer = null; if (!this.finished) this.ws.close(); }, 500);
      }
      return;
    }
    clearTimeout(this.gapTimer);
    this.finish();
    this.h.onDone?.(this.doneMsg);
  }

  finish() {
    this.finished = true;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= 1) this.ws.close();
  }

  close() { this.finish(); }
}
