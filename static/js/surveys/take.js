// The participant's side of a listening test: instructions, volume check, the practice item,
// the items one by one (each clip played to the end before the answers unlock), the
// questionnaire and the completion code. The server keeps the progress: reloading the page, or
// coming back to the survey link later, resumes at the next unanswered item.
//
// Test hook: window.__survey = {stage, position, played, error} (read-only for tests).

const cfg = JSON.parse(document.getElementById("survey-config").textContent);
const app = document.getElementById("survey-app");
const hook = (window.__survey = { stage: "loading", position: null, played: 0, error: null });
let current = null; // the <audio> playing now

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function show(stage, ...nodes) {
  hook.stage = stage;
  stopAudio();
  app.replaceChildren(...nodes);
}

function showError(msg) {
  hook.error = msg;
  let box = app.querySelector(".error");
  if (!box) app.append((box = el("p", { class: "error", role: "alert" })));
  box.textContent = msg;
}

async function call(url, body) {
  const opts = body === undefined ? { credentials: "same-origin" } : {
    method: "POST", credentials: "same-origin", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
  };
  let resp;
  try {
    resp = await fetch(url, opts);
  } catch {
    throw new Error("the server could not be reached; check your connection and try again");
  }
  let data = {};
  try { data = await resp.json(); } catch { /* an HTML error page */ }
  if (!resp.ok) {
    const err = new Error(data.error || `the server answered ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function stopAudio() {
  if (current) { current.pause(); current = null; }
}

// A clip: a Play button (no seeking: no native controls) and a status; onEnded once played.
function clipRow(clip, onEnded) {
  const status = el("span", { class: "status" }, "not played yet");
  const audio = new Audio(clip.url);
  audio.preload = "auto";
  const row = el("div", { class: "clip" });
  const button = el("button", { type: "button", class: "play", onclick: () => {
    stopAudio();
    current = audio;
    audio.currentTime = 0;
    status.textContent = "playing…";
    audio.play().catch((e) => { status.textContent = "could not play: " + e.message; });
  } }, `Play ${clip.label}`);
  audio.addEventListener("ended", () => {
    if (current === audio) current = null;
    hook.played += 1;
    if (!row.classList.contains("played")) { row.classList.add("played"); onEnded(); }
    status.textContent = "played ✓";
  });
  audio.addEventListener("error", () => { status.textContent = "the clip could not be loaded"; });
  row.append(button, status);
  return row;
}

function scale(name, q) {
  const box = el("div", { class: "scale", role: "radiogroup", "aria-label": q.label });
  const values = q.choices ? Object.keys(q.choices).map(Number).sort((a, b) => b - a)
    : Array.from({ length: q.max - q.min + 1 }, (_, i) => q.min + i);
  for (const v of values) {
    const text = q.choices ? q.choices[v] : (q.anchors[v] ? `${v} · ${q.anchors[v]}` : String(v));
    box.append(el("label", {}, el("input", { type: "radio", name, value: v }), text));
  }
  return el("div", { class: `question q-${name}` }, el("p", {}, q.label), box);
}

function instructions(state) {
  show("instructions",
    el("h2", {}, state.resumed ? "Welcome back" : "Instructions"),
    el("p", {}, state.resumed ? "You can continue where you stopped." : cfg.instructions),
    el("p", {}, "Each clip must be played to the end before you can answer. You cannot skip " +
      "ahead in a clip, but you may play it again."),
    el("button", { type: "button", id: "to-volume", onclick: () => volume(state) }, "Continue"));
}

function volume(state) {
  const next = el("button", { type: "button", id: "volume-ok", disabled: true,
    onclick: () => item(state) }, "I can hear it clearly");
  const audio = new Audio(cfg.volume_url);
  const play = el("button", { type: "button", id: "volume-play", onclick: () => {
    stopAudio(); current = audio; audio.currentTime = 0;
    audio.play().then(() => { next.disabled = false; }).catch((e) => showError(e.message));
  } }, "Play the test sound");
  show("volume", el("h2", {}, "Volume check"),
    el("p", {}, "Play the test sound and set your volume so that it is comfortable. Keep it " +
      "there for the whole test."), el("p", {}, play, " ", next));
}

function item(state) {
  if (!state.item) return state.done ? done(state.completion_code) : questionnaire(state);
  const it = state.item;
  hook.position = it.position;
  const nTrials = state.total - state.n_practice;
  const heading = it.practice ? "Practice" : `Item ${it.position - state.n_practice + 1} of ${nTrials}`;
  const form = el("form", { class: "answers" });
  const fields = el("fieldset", { disabled: true });
  for (const [name, q] of Object.entries(state.questions)) fields.append(scale(name, q));
  const send = el("button", { type: "submit" }, "Next");
  fields.append(send);
  form.append(fields);
  let remaining = it.clips.length;
  const clips = it.clips.map((c) => clipRow(c, () => {
    remaining -= 1;
    if (remaining === 0) fields.disabled = false;
  }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const answers = {};
    for (const name of Object.keys(state.questions)) {
      const v = form.querySelector(`input[name="${name}"]:checked`);
      if (!v) return showError("Please answer every question.");
      answers[name] = Number(v.value);
    }
    send.disabled = true;
    try {
      const next = await call(cfg.answer_url, { position: it.position, key: it.key, answers });
      hook.error = null;
      item(next);
    } catch (e) {
      if (e.status === 409) return proceed(await call(cfg.state_url), e.message);
      showError(e.message);
      send.disabled = false;
    }
  });
  show(it.practice ? "practice" : "item",
    el("p", { class: "progress" }, heading),
    it.practice ? el("p", { class: "practice-note" },
      "This first one is for practice: get used to the clips and the scales.") : "",
    it.instruction ? el("p", { class: "instruction" }, it.instruction) : "",
    ...clips, form);
}

function select(name, label, options) {
  return el("div", { class: "field" }, el("label", { for: name }, label),
    el("select", { id: name, name }, el("option", { value: "" }, "choose…"),
      ...options.map((o) => el("option", { value: o }, o))));
}

function questionnaire(state) {
  const form = el("form", { class: "questionnaire" },
    select("age_band", "Your age", state.age_bands),
    select("training_band", "Years of musical training", state.training_bands),
    el("button", { type: "submit", id: "submit-survey" }, "Submit"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { age_band: form.age_band.value, training_band: form.training_band.value };
    if (!body.age_band || !body.training_band) return showError("Please answer both questions.");
    try {
      done((await call(cfg.submit_url, body)).completion_code);
    } catch (e) { showError(e.message); }
  });
  show("questionnaire", el("h2", {}, "Almost done"), el("p", {}, "Two questions about you:"), form);
}

function done(code) {
  hook.completionCode = code;
  show("done", el("h2", {}, "Thank you!"), el("p", {}, "Your answers are saved. Your completion code:"),
    el("p", { class: "code", id: "completion-code" }, code));
}

// Where the server says we are (after an answer it already had: a retry, another tab).
function proceed(state, message) {
  if (state.done) return done(state.completion_code);
  if (!state.accepting) {
    return show("closed", el("p", { class: "error", role: "alert" }, message || "This survey is closed."));
  }
  return item(state);
}

async function start() {
  try {
    const state = await call(cfg.state_url);
    if (state.done || !state.accepting || !state.item) return proceed(state);
    instructions(state);
  } catch (e) {
    show("error");
    showError(e.message);
  }
}

start();
