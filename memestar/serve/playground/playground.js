// The meme-star playground: a chat thread over `meme serve`'s own API, as a chat app would call it.
// Plain browser JavaScript, no build step and no outside requests: every call below is one an app makes too.
//   GET  /openapi.json          the settings a request takes (choices, defaults), so this page never drifts
//   GET  /memes                 the picker; GET /memes/{id}/preview.gif each meme's preview
//   GET  /subjects              the learned subjects a subject message can name (offered as you type)
//   POST /subjects              learn a subject from 1 to 4 photos (a job), on the picked meme's base
//   POST /memes/{id}/gen        one clip (its bytes) or variants (JSON with base64 clips); with a photo attached,
//                               multipart: the photo as `image`, the JSON settings as `settings`
//   POST /memes, GET /jobs/{id} train a meme from a clip, and follow the job
// With a token the server answers 401 until the page sends `Authorization: Bearer TOKEN`: it asks once.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "memestar-token";
const EXTENSIONS = {"image/gif": "gif", "video/mp4": "mp4", "image/webp": "webp", "video/webm": "webm",
                    "image/apng": "png"};
const state = {memes: [], meme: null, token: sessionStorage.getItem(TOKEN_KEY), asking: null, previews: {}};

// ---- the API ------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function askForToken(why) {
  if (state.asking) return state.asking;
  const dialog = $("token-dialog");
  $("token-why").textContent = why;
  $("token-input").value = "";
  state.asking = new Promise((resolve) => {
    const done = (token) => {
      dialog.removeEventListener("close", onClose);
      state.asking = null;
      resolve(token);
    };
    const onClose = () => done(dialog.returnValue === "ok" ? $("token-input").value.trim() : null);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    $("token-input").focus();
  });
  return state.asking;
}

// fetch with the bearer token; a 401 asks for the token and tries again; an error answer throws its one line
async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
    let response;
    try {
      response = await fetch(path, {...options, headers});
    } catch (e) {
      throw new ApiError(0, "the server cannot be reached: is `meme serve` running?");
    }
    if (response.status === 401) {
      const token = await askForToken(state.token ? "That token was refused: try again." :
        "Ask whoever runs it. It is sent as a bearer header and kept for this tab only.");
      if (!token) throw new ApiError(401, "this server needs a token: reload the page to give one");
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      continue;
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      throw new ApiError(response.status, message);
    }
    return response;
  }
}

// ---- settings, from the server's own schema --------------------------------------------------------------

function choices(property) {
  const found = property.enum || (property.anyOf || []).flatMap((p) => p.enum || []);
  return found.filter((v) => v !== null);
}

function fillSelect(select, values, emptyLabel, chosen) {
  select.replaceChildren();
  if (emptyLabel) select.append(new Option(emptyLabel, ""));
  for (const v of values) select.append(new Option(v, v, false, v === chosen));
}

async function loadSchema() {
  const schema = await (await api("/openapi.json")).json();
  const gen = schema.components.schemas.GenBody.properties;
  fillSelect($("set-sampler"), choices(gen.sampler), null, gen.sampler.default);
  fillSelect($("set-start"), choices(gen.start), null, gen.start.default);
  fillSelect($("set-follow"), choices(gen.follow), null, gen.follow.default);
  fillSelect($("set-loop"), choices(gen.loop), null, gen.loop.default);
  fillSelect($("set-format"), choices(gen.format), null, gen.format.default);
  fillSelect($("set-preset"), choices(gen.preset), "none: a plain file");
  fillSelect($("set-style"), choices(gen.style), "none");
  for (const [id, name] of [["set-steps", "steps"], ["set-seed", "seed"], ["set-guidance", "guidance"],
                            ["set-variants", "variants"], ["set-strength", "strength"]]) {
    const p = gen[name];
    if (p.default !== undefined) $(id).value = p.default;
    if (p.maximum !== undefined) $(id).max = p.maximum;
  }
  for (const id of ["set-top", "set-bottom"]) $(id).maxLength = gen.top.anyOf?.[0]?.maxLength ?? 200;
  const ref = schema.paths["/memes"]?.post?.requestBody?.content?.["multipart/form-data"]?.schema?.$ref;
  const train = ref ? schema.components.schemas[ref.split("/").pop()].properties : {};
  const learnRef = schema.paths["/subjects"]?.post?.requestBody?.content?.["multipart/form-data"]?.schema?.$ref;
  const learn = learnRef ? schema.components.schemas[learnRef.split("/").pop()].properties : {};
  for (const [id, p] of [["train-steps", train.steps], ["train-frames", train.frames], ["train-size", train.size],
                         ["learn-steps", learn.steps]]) {
    if (!p) continue;
    if (p.default !== undefined) $(id).value = p.default;
    if (p.maximum !== undefined) $(id).max = p.maximum;
  }
}

// ---- the meme picker ---------------------------------------------------------------------------------------

async function previewUrl(meme) {
  if (!(meme.id in state.previews)) {
    state.previews[meme.id] = api(`/memes/${encodeURIComponent(meme.id)}/preview.gif`)
      .then(async (r) => URL.createObjectURL(await r.blob())).catch(() => null);
  }
  return state.previews[meme.id];
}

function memeCard(meme) {
  const card = document.createElement("button");
  card.type = "button";
  card.className = "meme";
  card.setAttribute("role", "radio");
  card.setAttribute("aria-checked", "false");
  card.tabIndex = -1;
  card.dataset.id = meme.id;
  const img = document.createElement("img");
  img.alt = "";
  img.width = img.height = 64;
  const text = document.createElement("span");
  text.className = "meme-text";
  const prompt = document.createElement("strong");
  prompt.textContent = meme.prompt;
  const facts = document.createElement("small");
  facts.textContent = `${meme.frames} frames · ${meme.size} px · ${meme.id}`;
  text.append(prompt, facts);
  card.append(img, text);
  card.addEventListener("click", () => pickMeme(meme.id, true));
  card.addEventListener("keydown", (e) => moveInPicker(e, card));
  previewUrl(meme).then((url) => { if (url) img.src = url; });
  return card;
}

function moveInPicker(event, card) {
  const step = {ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1}[event.key];
  if (!step) return;
  event.preventDefault();
  const cards = [...document.querySelectorAll(".meme")];
  const next = cards[(cards.indexOf(card) + step + cards.length) % cards.length];
  pickMeme(next.dataset.id, false);
  next.focus();
}

async function loadMemes(select) {
  const {memes} = await (await api("/memes")).json();
  state.memes = memes;
  $("meme-list").replaceChildren(...memes.map(memeCard));
  $("no-memes").hidden = memes.length > 0;
  const wanted = select || state.meme?.id || memes[0]?.id;
  if (wanted && memes.some((m) => m.id === wanted)) pickMeme(wanted, false);
}

async function loadSubjects() {
  const {subjects, uploads} = await (await api("/subjects")).json();
  $("learn-panel").hidden = !uploads;
  const options = subjects.map((s) => new Option(`learned on ${s.base.reference}`, s.name));
  $("learned-subjects").replaceChildren(...options);
}

function pickMeme(id, focusMessage) {
  const meme = state.memes.find((m) => m.id === id);
  if (!meme) return;
  const changed = state.meme?.id !== id;
  state.meme = meme;
  for (const card of document.querySelectorAll(".meme")) {
    const on = card.dataset.id === id;
    card.setAttribute("aria-checked", String(on));
    card.tabIndex = on ? 0 : -1;
  }
  $("chat-title").textContent = meme.prompt;
  $("chat-hint").textContent = meme.template.includes("{subject}") ?
    `Send a subject and it comes back as “${meme.template.replace("{subject}", "…")}”, or send a whole prompt.` :
    "Send a prompt.";
  updateMode();
  if (changed && $("thread").children.length) addNote(`Now chatting with “${meme.prompt}”.`);
  if (focusMessage) $("message").focus();
}

function sendMode() {
  return document.querySelector("input[name=mode]:checked").value;
}

function updateMode() {
  const subject = sendMode() === "subject";
  $("message-label").textContent = subject ? "Subject" : "Prompt";
  if (subject) $("message").setAttribute("list", "learned-subjects");
  else $("message").removeAttribute("list");  // learned subjects are names, not prompts
  const example = state.meme ? state.meme.template.replace("{subject}", "blueberry-elephant") : "";
  $("message").placeholder = subject ? "blueberry-elephant" : example;
}

// ---- the chat thread ---------------------------------------------------------------------------------------

function addItem(className) {
  const li = document.createElement("li");
  li.className = className;
  $("thread").append(li);
  li.scrollIntoView({block: "end"});
  return li;
}

function addNote(text) {
  addItem("note").textContent = text;
}

function fileName(text, type) {
  const slug = text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "meme";
  return `${slug}.${EXTENSIONS[type] || "bin"}`;
}

function mediaElement(blob, label) {
  const url = URL.createObjectURL(blob);
  let el;
  if (blob.type.startsWith("video/")) {
    el = document.createElement("video");
    Object.assign(el, {src: url, autoplay: true, loop: true, muted: true, playsInline: true, controls: true});
    el.setAttribute("aria-label", label);
  } else {
    el = document.createElement("img");
    el.src = url;
    el.alt = label;
  }
  el.className = "clip";
  return el;
}

function downloadLink(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.textContent = `Download ${name.split(".").pop().toUpperCase()} (${(blob.size / 1024).toFixed(1)} KiB)`;
  return a;
}

function base64Blob(data, type) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], {type});
}

function genBody(text, photo) {
  const body = photo && !text ? {} : {[sendMode()]: text};
  if (photo) body.strength = Number($("set-strength").value);
  body.steps = Number($("set-steps").value);
  body.seed = Number($("set-seed").value);
  body.guidance = Number($("set-guidance").value);
  const variants = Number($("set-variants").value);
  if (variants > 1) body.variants = variants;
  for (const [id, key] of [["set-sampler", "sampler"], ["set-start", "start"], ["set-follow", "follow"],
                           ["set-loop", "loop"], ["set-preset", "preset"], ["set-style", "style"],
                           ["set-top", "top"], ["set-bottom", "bottom"]]) {
    const value = $(id).value.trim();
    if (value) body[key] = value;
  }
  const format = $("set-format");
  if (!body.preset && format.value !== format.options[0]?.value) body.format = format.value;
  if ($("set-sticker").checked) body.sticker = true;
  return body;
}

function showVariants(reply, data, text) {
  const row = document.createElement("div");
  row.className = "variants";
  row.setAttribute("role", "group");
  row.setAttribute("aria-label", `${data.clips.length} variants: pick one`);
  for (const [i, clip] of data.clips.entries()) {
    const blob = base64Blob(clip.data, clip.media_type);
    const figure = document.createElement("figure");
    const pick = document.createElement("button");
    pick.type = "button";
    pick.textContent = `Pick ${i + 1}`;
    pick.setAttribute("aria-pressed", "false");
    pick.addEventListener("click", () => {
      for (const other of row.querySelectorAll("figure")) {
        other.classList.remove("picked");
        other.querySelector("button").setAttribute("aria-pressed", "false");
        other.querySelector("a")?.remove();
      }
      figure.classList.add("picked");
      pick.setAttribute("aria-pressed", "true");
      figure.append(downloadLink(blob, fileName(`${text}-${clip.seed}`, clip.media_type)));
    });
    const caption = document.createElement("figcaption");
    caption.textContent = `seed ${clip.seed}`;
    figure.append(mediaElement(blob, `${text}, variant ${i + 1} (seed ${clip.seed})`), caption, pick);
    row.append(figure);
  }
  reply.append(row);
}

function attachedPhoto() {
  return $("photo").files[0] || null;
}

function showPhoto() {
  const photo = attachedPhoto();
  $("photo-chip").hidden = !photo;
  $("photo-hint").hidden = Boolean(photo);
  if (!photo) return;
  $("photo-thumb").src = URL.createObjectURL(photo);
  $("photo-name").textContent = photo.name;
}

function clearPhoto() {
  $("photo").value = "";
  showPhoto();
}

async function send(text, photo) {
  const meme = state.meme;
  const body = genBody(text, photo);
  const mine = addItem("me");
  if (photo) {
    mine.append(Object.assign(document.createElement("img"),
                              {className: "photo", src: URL.createObjectURL(photo), alt: `photo ${photo.name}`}));
  }
  mine.append(text || (photo ? "" : "(an empty message)"));
  const label = !text ? `${photo?.name} doing “${meme.prompt}”`
    : body.subject ? meme.template.replace("{subject}", text) : text;
  const reply = addItem("them pending");
  reply.setAttribute("aria-busy", "true");
  const status = document.createElement("p");
  status.className = "progress";
  status.setAttribute("role", "status");
  reply.append(status);
  const started = performance.now();
  const tick = () => { status.textContent = `generating… ${((performance.now() - started) / 1000).toFixed(1)} s`; };
  tick();
  const timer = setInterval(tick, 100);
  try {
    let request = {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
    if (photo) {  // multipart: the browser writes its Content-Type, with the boundary
      const form = new FormData();
      form.append("image", photo, photo.name);
      form.append("settings", JSON.stringify(body));
      request = {method: "POST", body: form};
    }
    const response = await api(`/memes/${encodeURIComponent(meme.id)}/gen`, request);
    const seconds = Number(response.headers.get("X-Seconds") || 0);
    if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
      showVariants(reply, await response.json(), text || label);
    } else {
      const blob = await response.blob();
      reply.append(mediaElement(blob, label), downloadLink(blob, fileName(text || label, blob.type)));
    }
    const batch = response.headers.get("X-Batch-Size");
    status.textContent = `${seconds.toFixed(2)} s on the device${batch > 1 ? `, in a batch of ${batch}` : ""}` +
      ` · seed ${body.seed}`;
    const note = response.headers.get("X-Meme-Note");
    if (note) reply.append(Object.assign(document.createElement("p"), {className: "hint", textContent: note}));
  } catch (e) {
    reply.classList.add("error");
    status.setAttribute("role", "alert");
    status.textContent = e.message;
    if (e.status === 503 || e.status === 504 || e.status === 0) {
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = "Try again";
      again.addEventListener("click", () => send(text, photo));
      reply.append(again);
    }
  } finally {
    clearInterval(timer);
    reply.classList.remove("pending");
    reply.removeAttribute("aria-busy");
    reply.scrollIntoView({block: "end"});
  }
}

// ---- jobs: training a meme, learning a subject ------------------------------------------------------------

// Uploads `form` to `path` and follows the job it starts in the panel `${panel}-status`; `progress(job)` says what
// a running job is doing (its words, and its fraction or null), `done(job)` takes up what it made.
async function runJob(form, path, panel, what, progress, done) {
  const box = $(`${panel}-status`), text = $(`${panel}-text`), bar = $(`${panel}-progress`);
  const button = form.querySelector("button[type=submit]");
  box.hidden = false;
  box.classList.remove("error");
  text.removeAttribute("role");
  text.textContent = "uploading…";
  bar.removeAttribute("value");
  button.disabled = true;
  try {
    let job = await (await api(path, {method: "POST", body: new FormData(form)})).json();
    while (job.state === "queued" || job.state === "running") {
      if (job.state === "queued") {
        text.textContent = `${what(job)}: waiting for the device…`;
      } else {
        const [words, fraction] = progress(job);
        text.textContent = `${what(job)}: ${words}`;
        if (fraction != null) bar.value = fraction;
      }
      await new Promise((r) => setTimeout(r, 500));
      job = await (await api(`/jobs/${job.id}`)).json();
    }
    if (job.state === "failed") throw new ApiError(422, job.error);
    bar.value = 1;
    text.textContent = `${what(job)} is ready (${job.seconds ? job.seconds.toFixed(0) + " s" : "done"}).`;
    form.reset();
    await done(job);
  } catch (e) {
    box.classList.add("error");
    text.setAttribute("role", "alert");
    text.textContent = `${panel === "train" ? "Training" : "Learning"} failed: ${e.message}`;
    bar.value = 0;
  } finally {
    button.disabled = false;
  }
}

function train(form) {
  const tuning = ({progress: p}) => p.step < p.steps ?
    [`tuning, step ${p.step} of ${p.steps}` + (p.loss != null ? `, loss ${p.loss.toFixed(4)}` : ""), p.fraction] :
    ["inverting the clip and drawing its preview…", 1];
  return runJob(form, "/memes", "train", (job) => `meme ${job.meme}`, tuning, async (job) => {
    await loadSchema().catch(() => {});
    await loadMemes(job.meme);
  });
}

// A subject is learned on the picked meme's base; once learned, its name is in the message box, ready to send.
function learn(form) {
  $("learn-meme").disabled = !state.meme;  // no meme picked: the server's training base
  if (state.meme) $("learn-meme").value = state.meme.id;
  const learning = ({progress: p}) => [`learning, step ${p.step} of ${p.steps}`, p.fraction];
  return runJob(form, "/subjects", "learn", (job) => `subject ${job.subject}`, learning, async (job) => {
    await loadSubjects();
    document.querySelector("input[name=mode][value=subject]").checked = true;
    updateMode();
    $("message").value = job.subject;
  });
}

// ---- start -------------------------------------------------------------------------------------------------

async function watchServer() {
  try {
    const r = await fetch("/readyz");
    const body = await r.json();
    $("server-status").textContent = body.ready ? `ready · ${body.device}` : "starting…";
    if (!body.ready) setTimeout(watchServer, 1000);
  } catch (e) {
    $("server-status").textContent = "the server cannot be reached";
    setTimeout(watchServer, 3000);
  }
}

async function start() {
  $("token-cancel").addEventListener("click", () => $("token-dialog").close("cancel"));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if ($("token-input").value.trim()) $("token-dialog").close("ok");
  });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", updateMode);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("message").value.trim();
    if (!state.meme) { addItem("them error").textContent = "Pick a meme first."; return; }
    send(text, attachedPhoto());  // an empty message is sent too: the server's one-line error says why
    $("message").value = "";
    clearPhoto();
    if ($("set-new-seed").checked) $("set-seed").value = Number($("set-seed").value) + 1;
  });
  $("train-form").addEventListener("submit", (e) => { e.preventDefault(); train(e.target); });
  $("learn-form").addEventListener("submit", (e) => { e.preventDefault(); learn(e.target); });
  $("photo").addEventListener("change", showPhoto);
  $("photo-remove").addEventListener("click", clearPhoto);
  watchServer();
  try {
    await loadSchema();
    await loadMemes();
    await loadSubjects();
  } catch (e) {
    $("server-status").textContent = e.message;
  }
}

start();
