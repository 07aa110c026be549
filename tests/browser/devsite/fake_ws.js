// Dev fixture only: a WebSocket stand-in that streams /dev/chunks.json like the job
// consumer would. The first connection sends seq 1 twice, swaps seq 2 and 3 and drops
// after seq 5; reconnections (?from=N) replay from N in order. Tunable via
// window.__fakeWS (delayMs, disorder) before pressing Render.
(function () {
  const cfg = window.__fakeWS = { delayMs: 150, disorder: true, connections: [], sent: 0 };
  const chunks = fetch('/dev/chunks.json').then((r) => r.json());
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
  let job = 0;

  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      const u = new URL(url);
      this.from = Number(u.searchParams.get('from') || 0);
      this.first = !cfg.connections.some((c) => c.path === u.pathname);
      if (this.first) job += 1;
      cfg.connections.push({ path: u.pathname, from: this.from });
      setTimeout(() => this.run(), 5);
    }

    async run() {
      const all = await chunks;
      this.readyState = 1;
      this.onopen?.({});
      this.emit({ type: 'state', state: 'running', message: null });
      const order = [];
      for (let s = this.from; s < all.length; s += 1) order.push(s);
      const disorder = this.first && cfg.disorder && order.length > 6;
      if (disorder) { order.splice(2, 0, 1); [order[3], order[4]] = [order[4], order[3]]; }
      for (const s of order) {
        await sleep(cfg.delayMs);
        if (this.readyState !== 1) return;
        this.emit({ type: 'notes', seq: s, notes: all[s] });
        cfg.sent += 1;
        if (disorder && s === 5) { this.readyState = 3; this.onclose?.({ code: 1006 }); return; }
      }
      const n = all.reduce((k, c) => k + c.length, 0);
      this.emit({ type: 'done', performance_id: `perf-${job}`, n_notes: n, notes_url: '/dev/notes.json', downloads: {} });
    }

    emit(msg) { if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(msg) }); }
    send() {}
    close() { if (this.readyState < 2) { this.readyState = 3; this.onclose?.({ code: 1000 }); } }
  }
  window.WebSocket = FakeWebSocket;
})();
