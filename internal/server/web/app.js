// goclip web page: search an index by text, by an uploaded image, or by a
// result ("more like this"). Talks to POST /v1/search; thumbnails come
// from GET /v1/thumb. When the server has a video index, searches also
// list video moments (frames from GET /v1/video/thumb) that play in an
// HTML5 player from GET /v1/video/file. No external resources.
"use strict";

const $ = (id) => document.getElementById(id);
const TOP = 24;

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

function render(results) {
  const grid = $("results");
  grid.replaceChildren();
  for (const r of results) {
    const card = document.createElement("div");
    card.className = "result";
    card.tabIndex = 0;
    card.title = r.path;
    card.dataset.path = r.path;
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = r.path;
    img.src = "/v1/thumb?path=" + encodeURIComponent(r.path);
    const meta = document.createElement("div");
    meta.className = "meta";
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = r.score.toFixed(4);
    const path = document.createElement("div");
    path.className = "path";
    path.textContent = "\u200e" + r.path + "\u200e"; // keep / and . in place under direction: rtl
    meta.append(score, path);
    card.append(img, meta);
    const similar = () => {
      $("query-image").hidden = false;
      $("query-image").src = img.src;
      search({ path: r.path }, "images similar to " + r.path);
    };
    card.addEventListener("click", similar);
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") similar(); });
    grid.append(card);
  }
  grid.dataset.count = String(results.length);
}

// clock formats seconds as m:ss (h:mm:ss from an hour).
function clock(t) {
  t = Math.max(0, Math.round(t));
  const h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60, s = t % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? h + ":" + String(m).padStart(2, "0") + ":" + ss : m + ":" + ss;
}

function baseName(p) {
  const i = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\"));
  return p.slice(i + 1);
}

function renderMoments(moments) {
  const section = $("videos");
  const grid = $("moments");
  grid.replaceChildren();
  section.hidden = !moments || moments.length === 0;
  for (const m of moments || []) {
    const card = document.createElement("div");
    card.className = "result moment";
    card.tabIndex = 0;
    card.title = m.video;
    card.dataset.video = m.video;
    card.dataset.start = String(m.start);
    const wrap = document.createElement("div");
    wrap.className = "play";
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = baseName(m.video) + " at " + clock(m.start);
    img.src = "/v1/video/thumb?path=" + encodeURIComponent(m.video) + "&t=" + (m.peak || m.start);
    wrap.append(img);
    const meta = document.createElement("div");
    meta.className = "meta";
    const text = document.createElement("div");
    text.className = "label";
    text.textContent = baseName(m.video) + " · " + clock(m.start) + "–" + clock(m.end) + " · " + m.score.toFixed(4);
    meta.append(text);
    card.append(wrap, meta);
    const play = () => openPlayer(m);
    card.addEventListener("click", play);
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") play(); });
    grid.append(card);
  }
  grid.dataset.count = String(moments ? moments.length : 0);
}

function openPlayer(m) {
  const v = $("video");
  const dlg = $("player");
  dlg.dataset.state = "loading";
  $("player-title").textContent = baseName(m.video) + " · " + clock(m.start) + "–" + clock(m.end);
  const start = m.start;
  v.onloadedmetadata = () => {
    if (v.currentTime < start) v.currentTime = start;
  };
  // data-start-time records where playback began (for tests).
  const ready = () => {
    if (dlg.dataset.state === "ready" || v.currentTime < start) return;
    dlg.dataset.startTime = String(v.currentTime);
    dlg.dataset.state = "ready";
  };
  v.onseeked = ready;
  v.onplaying = ready;
  v.onerror = () => { dlg.dataset.state = "error"; setStatus("cannot play " + m.video, true); };
  v.src = "/v1/video/file?path=" + encodeURIComponent(m.video) + "#t=" + start;
  if (!dlg.open) dlg.showModal();
  const p = v.play();
  if (p) p.catch(() => {}); // autoplay may be refused; the controls remain
}

function closePlayer() {
  const v = $("video");
  v.pause();
  v.removeAttribute("src");
  v.load();
  $("player").close();
}
$("player-close").addEventListener("click", closePlayer);
$("player").addEventListener("close", () => $("video").pause());

let videosEnabled = false;
const health = fetch("/healthz").then((r) => r.json()).then((d) => {
  videosEnabled = !!d.videos;
  if (!d.search && !d.videos) setStatus("No index is loaded: start goclip serve with --db PATH to search.", true);
}).catch(() => {});

let seq = 0;
async function search(query, label) {
  const my = ++seq;
  document.body.dataset.state = "loading";
  setStatus("Searching for " + label + "…");
  try {
    await health;
    const body = Object.assign({ top: TOP }, query);
    if (videosEnabled) body.videos = true;
    const res = await fetch("/v1/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await res.json();
    if (my !== seq) return; // a newer search replaced this one
    if (!res.ok) {
      render([]);
      renderMoments([]);
      setStatus(data.error || res.statusText, true);
      document.body.dataset.state = "error";
      return;
    }
    render(data.results);
    renderMoments(data.moments);
    let msg = data.results.length + " results";
    if (data.moments) msg += " and " + data.moments.length + (data.moments.length === 1 ? " video moment" : " video moments");
    setStatus(msg + " for " + label);
    document.body.dataset.state = "done";
    document.body.dataset.query = label;
  } catch (err) {
    if (my !== seq) return;
    setStatus(String(err), true);
    document.body.dataset.state = "error";
  }
}

function searchFile(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    $("query-image").src = reader.result;
    $("query-image").hidden = false;
    search({ image: reader.result }, file.name || "the image");
  };
  reader.onerror = () => setStatus("cannot read " + file.name, true);
  reader.readAsDataURL(file);
}

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("q").value.trim();
  if (!q) return;
  $("query-image").hidden = true;
  search({ text: q }, JSON.stringify(q));
});

$("file").addEventListener("change", (e) => {
  searchFile(e.target.files[0]);
  e.target.value = "";
});

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const f = e.dataTransfer.files[0];
  if (f) searchFile(f);
});
document.addEventListener("paste", (e) => {
  for (const item of e.clipboardData.items) {
    if (item.kind === "file" && item.type.startsWith("image/")) {
      searchFile(item.getAsFile());
      return;
    }
  }
});

fetch("/v1/models").then((r) => r.json()).then((d) => {
  const m = d.models && d.models[0];
  if (m) $("model").textContent = m.name + " · " + m.embed_dim + "-d";
}).catch(() => {});
