// posetransfer demo page: vanilla JS, talks only to this server.
"use strict";

const state = { info: null, pose: null, sample: null, dragging: -1, scale: 3 };
const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  if (message) { box.textContent = message; box.hidden = false; } else { box.textContent = ""; box.hidden = true; }
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("cannot reach the server: " + err.message);
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : ("HTTP " + response.status + " " + response.statusText);
    throw new Error(message);
  }
  return body;
}

function present(p) { return p && p[0] >= 0 && p[1] >= 0; }

function drawPose(canvas, pose, scale, highlight) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const info = state.info;
  ctx.lineWidth = Math.max(1, scale * 1.5);
  info.limbs.forEach(([a, b], i) => {
    if (!present(pose[a]) || !present(pose[b])) return;
    const c = info.colors[i % info.colors.length];
    ctx.strokeStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.beginPath();
    ctx.moveTo((pose[a][1] + 0.5) * scale, (pose[a][0] + 0.5) * scale);
    ctx.lineTo((pose[b][1] + 0.5) * scale, (pose[b][0] + 0.5) * scale);
    ctx.stroke();
  });
  pose.forEach((p, j) => {
    if (!present(p)) return;
    const c = info.colors[j % info.colors.length];
    ctx.fillStyle = j === highlight ? "#fff" : `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.beginPath();
    ctx.arc((p[1] + 0.5) * scale, (p[0] + 0.5) * scale, Math.max(2, scale * 1.6), 0, 2 * Math.PI);
    ctx.fill();
  });
}

function redraw() { drawPose($("pose-canvas"), state.pose, state.scale, state.dragging); }

function setPose(pose) {
  state.pose = pose.map((p) => [p[0], p[1]]);
  redraw();
}

function canvasPoint(event) {
  const canvas = $("pose-canvas");
  const rect = canvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * (canvas.width / rect.width) / state.scale - 0.5;
  const y = (event.clientY - rect.top) * (canvas.height / rect.height) / state.scale - 0.5;
  return [y, x];
}

function setupEditor() {
  const canvas = $("pose-canvas");
  const [h, w] = state.info.size;
  state.scale = h >= 200 ? 2 : 3;
  canvas.width = w * state.scale;
  canvas.height = h * state.scale;
  canvas.addEventListener("pointerdown", (event) => {
    const [y, x] = canvasPoint(event);
    let best = -1, bestDist = 8;
    state.pose.forEach((p, j) => {
      if (!present(p)) return;
      const d = Math.hypot(p[0] - y, p[1] - x);
      if (d < bestDist) { best = j; bestDist = d; }
    });
    if (best >= 0) { state.dragging = best; canvas.setPointerCapture(event.pointerId); redraw(); }
  });
  canvas.addEventListener("pointermove", (event) => {
    if (state.dragging < 0) return;
    const [y, x] = canvasPoint(event);
    const [hh, ww] = state.info.size;
    state.pose[state.dragging] = [Math.min(hh - 1, Math.max(0, Math.round(y))), Math.min(ww - 1, Math.max(0, Math.round(x)))];
    redraw();
  });
  const stop = () => { state.dragging = -1; redraw(); };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("reset-pose").addEventListener("click", () => setPose(state.info.default_pose));
}

async function loadGallery() {
  const { poses } = await api("/api/gallery");
  const box = $("gallery");
  if (!poses.length) return;
  box.textContent = "";
  const [h, w] = state.info.size;
  const scale = 64 / h;
  poses.forEach((item, i) => {
    const c = document.createElement("canvas");
    c.width = Math.round(w * scale);
    c.height = Math.round(h * scale);
    c.title = item.name;
    c.dataset.index = String(i);
    c.className = "gallery-pose";
    drawPose(c, item.keypoints, scale, -1);
    c.addEventListener("click", () => {
      box.querySelectorAll("canvas").forEach((x) => x.classList.remove("selected"));
      c.classList.add("selected");
      setPose(item.keypoints);
    });
    box.appendChild(c);
  });
}

function previewFile(file) {
  const url = URL.createObjectURL(file);
  const img = $("source-preview");
  img.onload = () => URL.revokeObjectURL(url);
  img.src = url;
}

async function useSample() {
  showError("");
  try {
    const sample = await api("/api/sample");
    state.sample = sample.name;
    $("photo").value = "";
    $("source-preview").src = sample.image;
  } catch (err) { showError(err.message); }
}

async function generate() {
  showError("");
  const file = $("photo").files[0];
  if (!file && !state.sample) { showError("choose a photo first (or use a dataset sample)"); return; }
  if (file && file.size > state.info.max_upload_bytes) {
    showError(`${file.name}: ${(file.size / 1048576).toFixed(1)} MB, the limit is ${state.info.max_upload_bytes / 1048576} MB`);
    return;
  }
  const form = new FormData();
  if (file) {
    form.append("image", file, file.name);
    const poseFile = $("photo-pose").files[0];
    if (poseFile) form.append("source_keypoints", await poseFile.text());
  } else {
    form.append("sample", state.sample);
  }
  form.append("target_keypoints", JSON.stringify(state.pose));
  const button = $("generate");
  button.disabled = true;
  $("status").textContent = "generating…";
  try {
    const result = await api("/api/transfer", { method: "POST", body: form });
    const [h, w] = result.size;
    for (const [id, src] of [["crop", result.source], ["result", result.image]]) {
      const img = $(id);
      img.width = w * 2; img.height = h * 2;
      img.src = src;
    }
    if (result.attention) { $("attention").src = result.attention; $("attention").hidden = false; }
    else { $("attention").hidden = true; }
    $("status").textContent = `done in ${result.milliseconds} ms`;
  } catch (err) {
    $("status").textContent = "";
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  try {
    state.info = await api("/api/info");
  } catch (err) { showError(err.message); return; }
  $("model-info").textContent = `${state.info.arch} · ${state.info.size[0]}×${state.info.size[1]}`;
  setupEditor();
  setPose(state.info.default_pose);
  $("photo").addEventListener("change", () => {
    const file = $("photo").files[0];
    if (file) { state.sample = null; previewFile(file); }
  });
  if (state.info.has_samples) {
    $("use-sample").hidden = false;
    $("use-sample").addEventListener("click", useSample);
  }
  $("generate").addEventListener("click", generate);
  try { await loadGallery(); } catch (err) { showError(err.message); }
}

main();
