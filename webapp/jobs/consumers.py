"""WebSocket consumer of a render job: owner only; replays stored chunks, then relays live ones.

The owner is the session's user (browsers) or the API token's (scripts, see webapp.jobs.ws_auth).
Refusals, with nothing relayed: 4400 bad URL, 4401 bad token, 4403 no such job or not yours. A
token client gets the code in the close frame (the socket is accepted, then closed); a browser's
handshake is refused (HTTP 403). Once the job has ended (after ``done``, or a failed or cancelled
state) the server closes the socket (1000).
"""
from __future__ import annotations

import asyncio
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.jobs.lifecycle import render_jobs_fail_stale
from webapp.jobs.selectors import job_get_for_requester, job_queue_position, job_stream_snapshot
from webapp.models import RenderJob

WATCHDOG_EVERY_S = 2.0
SWEEP_EVERY_TICKS = 3   # the stale-job sweep runs every third watchdog tick


@database_sync_to_async
def _load(job_id, user, session_key):
    return job_get_for_requester(job_id=job_id, user=user, session_key=session_key)


@database_sync_to_async
def _snapshot(job_id, from_seq):
    return job_stream_snapshot(job_id=job_id, from_seq=from_seq)


@database_sync_to_async
def _tick(job_id, sweep: bool):
    """The job's state and message, and its queue position while queued (sweeping it first)."""
    if sweep:
        render_jobs_fail_stale(job_ids=[job_id])
    job = RenderJob.objects.get(id=job_id)
    queue = job_queue_position(job=job) if job.state == RenderJob.State.QUEUED else None
    return job.state, job.message or None, queue


class JobConsumer(AsyncJsonWebsocketConsumer):
    """Messages out: state, queue (position and estimated wait, while queued), notes (seq 0, 1,
    ... without gaps or repeats; with the pedal events those notes complete), done."""

    async def connect(self):
        if self.scope.get("token_auth") == "invalid":
            await self._refuse(4401)
            return
        try:
            job_id = uuid.UUID(self.scope["url_route"]["kwargs"]["job_id"])
            from_seq = int(parse_qs(self.scope.get("query_string", b"").decode()).get(
                "from", ["0"])[0])
        except (ValueError, KeyError):
            await self._refuse(4400)
            return
        session = self.scope.get("session")
        job = await _load(job_id, self.scope.get("user"),
                          getattr(session, "session_key", None) or "")
        if job is None:
            await self._refuse(4403)
            return
        self.job_id, self.group = job.id, job.group_name
        self.next_seq, self.ended, self.queue = max(0, from_seq), False, None
        self.lock = asyncio.Lock()  # events and the watchdog send in turn
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        async with self.lock:
            state, message, chunks, done = await _snapshot(job.id, self.next_seq)
            await self.send_json({"type": "state", "state": state, "message": message})
            for c in chunks:
                await self._send_chunk(c["seq"], c["text"])
            if done is not None:
                await self._send_done(done)
                return
            if state in ("failed", "cancelled"):
                await self._end()
                return
        self.watchdog = asyncio.ensure_future(self._watch())

    async def _refuse(self, code: int) -> None:
        """Close before anything is sent; a token client is accepted first to see ``code``."""
        if self.scope.get("token_auth"):
            await self.accept()
        await self.close(code=code)

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if getattr(self, "watchdog", None):
            self.watchdog.cancel()

    async def _watch(self):
        """Tell a queued job's listener its place in the queue; notice a worker that died (the
        sweep fails its job) and an end whose event was lost (Redis blip): read from the rows."""
        tick = 0
        while not self.ended:
            state, message, queue = await _tick(self.job_id, tick % SWEEP_EVERY_TICKS == 1)
            async with self.lock:
                if self.ended:
                    return
                if queue is not None and queue != self.queue:
                    self.queue = queue
                    await self.send_json({"type": "queue", **queue})
                if state == "done":
                    await self._catch_up_and_finish()
                elif state in ("failed", "cancelled"):
                    await self._catch_up()
                    await self.send_json({"type": "state", "state": state, "message": message})
                    await self._end()
            tick += 1
            await asyncio.sleep(WATCHDOG_EVERY_S)

    async def _end(self) -> None:
        """The job has ended: nothing more to relay, close the socket."""
        self.ended = True
        await self.close(code=1000)

    async def _catch_up(self) -> None:
        """Send the stored chunks this socket has not relayed (their live events were lost: a
        Redis blip, or a send that failed and ended the job), so that an ended job's listener
        has every kept note, as a late listener would."""
        _, _, missing, _ = await _snapshot(self.job_id, self.next_seq)
        for c in missing:
            await self._send_chunk(c["seq"], c["text"])

    async def _catch_up_and_finish(self) -> None:
        """Send the chunks this socket has not relayed, then 'done' (and close)."""
        _, _, missing, done = await _snapshot(self.job_id, self.next_seq)
        for c in missing:
            await self._send_chunk(c["seq"], c["text"])
        if done is not None:
            await self._send_done(done)

    async def _send_chunk(self, seq: int, text: str) -> None:
        """Relay chunk ``seq`` once and in order: ``text`` is its message, already encoded (by
        the publisher, live, or from the stored row, selectors.job_chunks)."""
        if seq < self.next_seq or self.ended:
            return  # already sent (replay and live overlap)
        if seq > self.next_seq:  # missed some live messages: fill the gap from the database
            _, _, missing, _ = await _snapshot(self.job_id, self.next_seq)
            for c in missing:
                if self.next_seq <= c["seq"] < seq:
                    await self.send(text_data=c["text"])
                    self.next_seq = c["seq"] + 1
            if seq != self.next_seq:
                return
        await self.send(text_data=text)
        self.next_seq = seq + 1

    async def _send_done(self, summary: dict) -> None:
        if self.ended:
            return
        await self.send_json({"type": "done", **summary})
        await self._end()

    # channel-layer events
    async def job_notes(self, event):
        async with self.lock:
            await self._send_chunk(event["seq"], event["text"])

    async def job_state(self, event):
        async with self.lock:
            if self.ended:
                return
            if event["state"] in ("failed", "cancelled"):
                await self._catch_up()
            await self.send_json({"type": "state", "state": event["state"],
                                  "message": event.get("message")})
            if event["state"] in ("failed", "cancelled"):
                await self._end()

    async def job_done(self, event):
        summary = {k: v for k, v in event.items() if k not in ("type", "n_chunks")}
        async with self.lock:
            if event.get("n_chunks") != self.next_seq:
                await self._catch_up()  # chunks the relay missed come before 'done'
            await self._send_done(summary)
