// Unit tests of static/js/player/stream.js under node's test runner (no browser):
// a scripted socket stands in for the server side of /ws/jobs/<id>/.
import { test } from 'node:test';
import assert from 'node:assert/strict';

globalThis.window = { location: { href: 'http://127.0.0.1:8000/scores/x/' } };
const sockets = [];
globalThis.WebSocket = class {
  constructor(url) { this.url = url; this.readyState = 1; sockets.push(this); }
  close() { this.readyState = 3; this.onclose?.({}); }
  send() {}
  push(msg) { this.onmessage({ data: JSON.stringify(msg) }); }
};
const { JobStream } = await import('../../static/js/player/stream.js');
const chunk = (seq, n = 2) => ({ type: 'notes', seq, notes: Array.from({ length: n }, (_, k) => ({ id: `n${seq}-${k}` })) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('chunks are delivered once, in seq order, whatever order they arrive in', () => {
  sockets.length = 0;
  const got = [];
  const s = new JobStream('/ws/jobs/a/', { onNotes: (notes, seq) => got.push(seq) });
  assert.equal(sockets[0].url, 'ws://127.0.0.1:8000/ws/jobs/a/');
  for (const seq of [0, 2, 1, 1, 0, 4, 3]) sockets[0].push(chunk(seq));
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
  assert.equal(s.duplicates, 2);
  s.close();
});

test('a dropped connection reconnects asking for the first missing chunk', async () => {
  sockets.length = 0;
  const got = [];
  const s = new JobStream('/ws/jobs/b/', { onNotes: (notes, seq) => got.push(seq) });
  sockets[0].push(chunk(0));
  sockets[0].push(chunk(1));
  sockets[0].push(chunk(3));          // buffered: 2 is missing
  sockets[0].onclose({});             // the server went away
  await sleep(250);
  assert.equal(sockets.length, 2);
  assert.match(sockets[1].url, /\?from=2$/);
  sockets[1].push(chunk(2));
  sockets[1].push(chunk(3));          // replayed: a duplicate
  assert.deepEqual(got, [0, 1, 2, 3]);
  assert.equal(s.reconnects, 1);
  s.close();
});

test('"done" waits for every note; a gap makes it fetch the rest first', async () => {
  sockets.length = 0;
  let done = null;
  const s = new JobStream('/ws/jobs/c/', { onDone: (m) => { done = m; } });
  sockets[0].push(chunk(0));
  sockets[0].push({ type: 'done', n_notes: 4, performance_id: 'p' });
  assert.equal(done, null, 'two notes are missing');
  await sleep(800);
  assert.equal(sockets.length, 2, 'it reconnected for the missing chunk');
  assert.match(sockets[1].url, /\?from=1$/);
  sockets[1].push(chunk(1));
  sockets[1].push({ type: 'done', n_notes: 4, performance_id: 'p' });
  assert.equal(done.performance_id, 'p');
  assert.equal(s.finished, true);
});

test('failed and cancelled states end the stream without reconnecting', async () => {
  sockets.length = 0;
  const states = [];
  const s = new JobStream('/ws/jobs/d/', { onState: (st, msg) => states.push([st, msg]) });
  sockets[0].push({ type: 'state', state: 'failed', message: 'boom' });
  assert.deepEqual(states, [['failed', 'boom']]);
  await sleep(300);
  assert.equal(sockets.length, 1);
  assert.equal(s.finished, true);
});
