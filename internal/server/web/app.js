// goclip web page: search an index by text, by an uploaded image, or by a
// result ("more like this"). Talks to POST /v1/search; thumbnails come
// from GET /v1/thumb. No external resources.
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

let seq = 0;
async function search(query, label) {
  const my = ++seq;
  document.body.dataset.state = "loading";
  setStatus("Searching for " + label + "…");
  try {
    const res = await fetch("/v1/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ top: TOP }, query)),
    });
    const data = await res.json();
    if (my !== seq) return; // a newer search replaced this one
    if (!res.ok) {
      render([]);
      setStatus(data.error || res.statusText, true);
      document.body.dataset.state = "error";
      return;
    }
    render(data.results);
    setStatus(data.results.length + " results for " + label);
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
fetch("/healthz").then((r) => r.json()).then((d) => {
  if (!d.search) setStatus("No index is loaded: start goclip serve with --db PATH to search.", true);
}).catch(() => {});
