// DOM of the player: transport bar, progress, messages, controls, score area, takes list
// with A/B switching, plots, reference performances.

export function fmtTime(s) {
  if (!Number.isFinite(s) || s < 0) s = 0;
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return `${m}:${String(sec).padStart(2, '0')}`;
}

function make(tag, attrs = {}, text = '') {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text) el.textContent = text;
  return el;
}

/** Build the player's elements inside `root`; returns them by name. */
export function buildUI(root) {
  root.classList.add('pr-player');
  const bar = make('div', { class: 'pr-bar', role: 'toolbar', 'aria-label': 'Player' });
  const ui = {
    render: make('button', { type: 'button', class: 'pr-render' }, 'Render'),
    cancel: make('button', { type: 'button', class: 'pr-cancel', hidden: '' }, 'Cancel'),
    play: make('button', { type: 'button', class: 'pr-play', disabled: '', 'aria-label': 'Play' }, 'Play'),
    time: make('span', { class: 'pr-time', 'aria-live': 'off' }, '0:00 / 0:00'),
    seek: make('input', { type: 'range', class: 'pr-seek', min: '0', max: '0', step: '0.01', value: '0', 'aria-label': 'Seek' }),
    tempo: make('span', { class: 'pr-tempo', title: 'Tempo of the note sounding' }, '♩ = –'),
    status: make('span', { class: 'pr-status', role: 'status' }, 'Loading score…'),
    progress: make('progress', { class: 'pr-progress', max: '1', value: '0', hidden: '' }),
    message: make('div', { class: 'pr-message', role: 'alert', hidden: '' }),
    score: make('div', { class: 'pr-score', 'aria-label': 'Engraved score' }),
    takes: make('ol', { class: 'pr-takes-list' }),
    ab: make('button', { type: 'button', class: 'pr-ab', disabled: '', title: 'Switch to the next compared take at the same position' }, 'A/B switch'),
    abInfo: make('span', { class: 'pr-ab-info', role: 'status' }),
    controls: make('section', { class: 'pr-controls-box' }),
    references: make('section', { class: 'pr-references' }),
    plots: make('section', { class: 'pr-plots' }),
  };
  bar.append(ui.render, ui.cancel, ui.play, ui.time, ui.seek, ui.tempo, ui.status, ui.progress);
  const takes = make('section', { class: 'pr-takes' });
  const abBar = make('div', { class: 'pr-ab-bar' });
  abBar.append(ui.ab, ui.abInfo);
  takes.append(make('h2', {}, 'Takes'), abBar, ui.takes);
  root.replaceChildren(bar, ui.message, ui.controls, ui.score, takes, ui.plots, ui.references);
  return ui;
}

export function showMessage(ui, text) {
  ui.message.textContent = text || '';
  ui.message.hidden = !text;
}
