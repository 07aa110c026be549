// What tests and the benchmark read of the score page's player (static/js/player.js), as
// window.__player: state (idle|playing|paused|waiting|ended), streaming, scoreReady, samplesLoaded/samplesTotal, notesReceived, chunks,
// notesScheduled, notesLate, stalls, highlighted (elements lit now), highlightsTotal (note
// highlight events), duration, jobId, performanceId, reconnects, duplicates, error,
// timeline (ms after the Render click: posted, queued, running, firstChunk, firstSound,
// done), chunkLog, peakLevel; audioTime(), position(), level(), notes(); and `player`, the
// Player itself (renderParams/paramsHook for render controls, replay(take, {at}) for A/B);
// voices({held, pastRelease}) (sampler voices sounding; held: kept by the sustain pedal until a
// lift arrives; pastRelease: sounding after their key's release died away), pedalEvents;
// liveVariation, compared (performance ids ticked), abSwitches, plots (what the plots drew).

/** The probe of Player `p` (read-only views of its state, and the Player itself). */
export function playerProbe(p) {
  return {
    get state() { return p.transport.state; },
    get streaming() { return p.streaming; },
    get scoreReady() { return p.scoreReady; },
    get samplesLoaded() { return p.sampler.loadedCount; },
    get samplesTotal() { return p.sampler.totalCount; },
    get notesReceived() { return p.stats.notesReceived; },
    get chunks() { return p.stats.chunks; },
    get notesScheduled() { return p.transport.scheduled; },
    get notesLate() { return p.transport.late; },
    get stalls() { return p.transport.stalls; },
    get highlighted() { return p.score.litCount; },
    get highlightsTotal() { return p.stats.highlightsTotal; },
    get duration() { return p.transport.duration; },
    get jobId() { return p.job && p.job.job_id; },
    get performanceId() { return p.performanceId || null; },
    get referenceId() { return p.referenceId || null; },
    get liveVariation() { return p.liveVariation; },
    get compared() { return p.takes.selected().map((t) => t.performance_id); },
    get abSwitches() { return p.comparison.abSwitches; },
    get plots() { return { ...p.plots.stats }; },
    get reconnects() { return p.stream ? p.stream.reconnects : 0; },
    get duplicates() { return p.stream ? p.stream.duplicates : 0; },
    get firstSoundMs() { return p.stats.firstSoundMs; },
    get doneMs() { return p.stats.doneMs; },
    get error() { return p.error; },
    get chunkLog() { return p.chunkLog; },
    get timeline() { return { ...p.timeline, firstSound: p.stats.firstSoundMs, done: p.stats.doneMs }; },
    audioTime: () => p.ctx.currentTime,
    level: () => p.sampler.level(),
    get peakLevel() { return p.stats.peak || 0; },
    voices: ({ held = false, pastRelease = false } = {}) => p.sampler.voiceCount({ held, pastRelease }),
    get pedalEvents() { return p.transport.pedal.length; },
    audioState: () => p.ctx.state,
    position: () => p.transport.position(),
    notes: () => p.transport.notes.map(({ id, onset }) => ({ id, onset })),
    player: p,
  };
}
