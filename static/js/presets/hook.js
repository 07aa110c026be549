// The score page's preset hook (loaded next to the player, which it does not change):
// a "Save as preset" button on each finished take, and, when the page is opened with
// ?preset=<id or share token>, a banner to render this score with that preset: the
// controls panel is set to the preset's seed and controls (what is shown is what renders;
// change a slider to render a variation of it), and the player's own Render flow is used,
// through the preset's apply URL in the API (which keeps the preset's reference performance).
// It uses the player's public interface (#player.pianoPlayer, 'player:ready' and 'player:takes'
// events).
import { getJSON, postJSON } from '../player/api.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const script = document.getElementById('presets-hook');
const player = document.getElementById('player');

function make(tag, attrs = {}, text = '') {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text) el.textContent = text;
  return el;
}

function saveForm(li) {
  const form = make('form', { class: 'preset-save-form' });
  const input = make('input', { name: 'name', maxlength: '100', required: '', 'aria-label': 'Preset name',
    placeholder: 'Preset name' });
  const label = li.querySelector('.pr-take-label');
  input.value = label ? label.textContent.split(' · ').slice(0, 2).join(' · ') : 'My preset';
  const ok = make('button', { type: 'submit', class: 'preset-save-ok' }, 'Save');
  const msg = make('span', { class: 'preset-save-msg', role: 'status' });
  form.append(input, ok, msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    ok.disabled = true;
    try {
      const res = await postJSON(script.dataset.createUrl, {
        performance_id: li.dataset.performanceId, name: input.value,
      }, player.dataset.csrf);
      const done = make('a', { class: 'preset-saved', href: res.page_url }, `Saved as preset “${res.name}”`);
      form.replaceWith(done);
    } catch (e) {
      msg.textContent = e.message;
      ok.disabled = false;
    }
  });
  return form;
}

function addSaveButtons(list) {
  for (const li of list.querySelectorAll('li[data-performance-id]')) {
    if (!li.dataset.performanceId || li.querySelector('.preset-save, .preset-save-form, .preset-saved')) continue;
    const btn = make('button', { type: 'button', class: 'preset-save link' }, 'Save as preset');
    btn.addEventListener('click', () => {
      const form = saveForm(li);
      btn.replaceWith(form);
      form.querySelector('input').select();
    });
    li.append(btn);
  }
}

function watchTakes() {
  player.addEventListener('player:takes', () => {
    const list = player.querySelector('.pr-takes-list');
    if (list) addSaveButtons(list);
  });
  const list = player.querySelector('.pr-takes-list');   // drawn before this script ran
  if (list) addSaveButtons(list);
}

/** The player's public interface on #player (player.js mounts it; wait for it if need be). */
function mountedPlayer() {
  if (player.pianoPlayer) return Promise.resolve(player.pianoPlayer);
  return new Promise((resolve) => {
    player.addEventListener('player:ready', (ev) => resolve(ev.detail), { once: true });
  });
}

async function presetBanner(key) {
  const base = UUID.test(key) ? `/presets/${key}` : `/p/${encodeURIComponent(key)}`;
  const banner = make('div', { class: 'preset-banner', role: 'region', 'aria-label': 'Preset',
    style: 'padding:.5rem 1rem;margin:.5rem 0;background:#eef3ff;border-radius:4px' });
  player.before(banner);
  let info;
  try {
    info = await getJSON(`${base}/preset.json`);
  } catch (e) {
    banner.textContent = `The preset could not be opened: ${e.message}`;
    banner.classList.add('error');
    return;
  }
  const p = await mountedPlayer();
  p.setControls({ seed: info.seed, controls: info.controls });
  const text = make('span', {}, `Preset “${info.name}” by ${info.owner}${info.reference ? ', in the style of a reference performance' : ''}: `
    + 'its values are set below; change them to render a variation. ');
  const button = make('button', { type: 'button', class: 'preset-apply' }, 'Render with this preset');
  button.addEventListener('click', () => p.render({ url: info.apply_url, params: { score_id: player.dataset.scoreId } }));
  banner.append(text, button);
}

if (script && player) {
  if (script.dataset.canSave) watchTakes();
  const key = new URLSearchParams(window.location.search).get('preset');
  if (key) presetBanner(key);
}
