// handgrad's page: draw a digit (or type a prompt) and watch what the served model computes.
// Plain JavaScript, nothing fetched from elsewhere: every number comes from the JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let current = null;            // the chosen model's description (GET /api/models)

// --- small helpers ---------------------------------------------------------------------------------

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({detail: response.statusText}));
  if (!response.ok) throw new Error(typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail));
  return answer;
}

function flat(values) {
  return Array.isArray(values) ? values.flat(Infinity) : [values];
}

// A colour for v: grey levels from min (black) to max (white), or, for values of both signs,
// blue (negative) through white (0) to red (positive), scaled by the largest magnitude.
function colourScale(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (lo < 0 && hi > 0) {
    const m = Math.max(-lo, hi);
    return (v) => {
      const t = Math.min(1, Math.abs(v) / m);
      return v >= 0 ? [255, 255 * (1 - t), 255 * (1 - t)] : [255 * (1 - t), 255 * (1 - 0.6 * t), 255];
    };
  }
  const span = hi - lo || 1;
  return (v) => { const g = 255 * (v - lo) / span; return [g, g, g]; };
}

// Draw a (rows x cols) grid of values into ctx at (x0, y0), `cell` pixels per value.
function drawGrid(ctx, values, rows, cols, cell, x0, y0, colour) {
  const image = ctx.createImageData(cols * cell, rows * cell);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const rgb = i < values.length ? colour(values[i]) : [246, 247, 249];
      for (let dy = 0; dy < cell; dy++) {
        for (let dx = 0; dx < cell; dx++) {
          const p = 4 * ((r * cell + dy) * cols * cell + c * cell + dx);
          image.data[p] = rgb[0]; image.data[p + 1] = rgb[1]; image.data[p + 2] = rgb[2]; image.data[p + 3] = 255;
        }
      }
    }
  }
  ctx.putImageData(image, x0, y0);
}

function drawImage(canvas, values2d, colour) {
  const rows = values2d.length, cols = values2d[0].length, values = flat(values2d);
  const cell = Math.max(1, Math.floor(Math.min(canvas.width / cols, canvas.height / rows)));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawGrid(ctx, values, rows, cols, cell, 0, 0, colour || colourScale(values));
}

// --- choosing a model ------------------------------------------------------------------------------

async function start() {
  try {
    models = await api("/api/models");
  } catch (error) { showError(`cannot list the models: ${error.message}`); return; }
  const select = $("model");
  for (const m of models) select.add(new Option(`${m.name} (${m.kind === "image" ? m.dataset : "text"})`, m.name));
  select.addEventListener("change", () => choose(select.value));
  const wanted = new URLSearchParams(location.search).get("model");
  choose(models.some((m) => m.name === wanted) ? wanted : models[0].name);
}

function choose(name) {
  current = models.find((m) => m.name === name);
  $("model").value = name;
  showError("");
  $("image-view").hidden = current.kind !== "image";
  $("text-view").hidden = current.kind !== "text";
  if (current.kind === "image") {
    const [h, w] = current.image_shape;
    $("model-info").textContent = `${current.parameters.toLocaleString()} parameters; ${current.layers.join(" → ")}`;
    $("seen-caption").textContent = `${h}x${w}, as the ${current.dataset} images were made` +
      (h === 28 ? " (cropped, scaled to 20x20, centred by its centre of mass)" : " (cropped, scaled, counted in 4x4 blocks)");
    clearDrawing();
  } else {
    $("model-info").textContent = current.description;
    $("length").max = current.max_new_tokens;
  }
}

// --- image models: drawing, prediction, layers, saliency ------------------------------------------

const draw = $("draw");
const pen = draw.getContext("2d");
let drawing = false, hasInk = false, last = null;
let inFlight = false, again = false, pendingPixels = null;
let chosenClass = null, lastAnswer = null;

function clearDrawing() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, draw.width, draw.height);
  hasInk = false; pendingPixels = null; chosenClass = null; lastAnswer = null;
  $("truth").textContent = "";
  $("prediction").textContent = "draw something";
  for (const id of ["bars", "layers", "warnings"]) $(id).replaceChildren();
  for (const id of ["seen", "saliency"]) $(id).getContext("2d").clearRect(0, 0, 168, 168);
  $("saliency-class").textContent = "";
}

function point(event) {
  const box = draw.getBoundingClientRect();
  return [(event.clientX - box.left) * draw.width / box.width, (event.clientY - box.top) * draw.height / box.height];
}

function stroke(to) {
  pen.strokeStyle = "#fff"; pen.fillStyle = "#fff";
  pen.lineWidth = draw.width / 13; pen.lineCap = "round"; pen.lineJoin = "round";
  pen.beginPath();
  if (last) { pen.moveTo(...last); pen.lineTo(...to); pen.stroke(); }
  else { pen.arc(to[0], to[1], pen.lineWidth / 2, 0, 2 * Math.PI); pen.fill(); }
  last = to;
}

// Pointer events cover the mouse, touch screens and pens alike.
draw.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  draw.setPointerCapture(event.pointerId);
  drawing = true; last = null; hasInk = true; pendingPixels = null;
  $("truth").textContent = "";
  stroke(point(event));
  predictSoon();
});
draw.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  event.preventDefault();
  for (const e of event.getCoalescedEvents ? event.getCoalescedEvents() : [event]) stroke(point(e));
  predictSoon();
});
for (const type of ["pointerup", "pointercancel"]) {
  draw.addEventListener(type, () => { if (drawing) { drawing = false; last = null; predictSoon(); } });
}
$("clear").addEventListener("click", clearDrawing);

$("random").addEventListener("click", async () => {
  try {
    const sample = await api(`/api/models/${current.name}/test-image`);
    clearDrawing();
    drawImage(draw, sample.pixels, (v) => { const g = 255 * Math.max(0, Math.min(1, v)); return [g, g, g]; });
    pendingPixels = sample.pixels;
    $("truth").textContent = `test image #${sample.index} of ${sample.dataset}; true label: ${sample.class_name}`;
    $("truth").dataset.label = sample.label;
    predictSoon();
  } catch (error) { showError(error.message); }
});

// One request at a time; strokes drawn meanwhile are sent as soon as the answer arrives.
function predictSoon() {
  if (inFlight) { again = true; return; }
  predict();
}

async function predict() {
  if (!hasInk && !pendingPixels) return;
  inFlight = true; again = false;
  const body = pendingPixels ? {pixels: pendingPixels} : {image: draw.toDataURL("image/png")};
  if (chosenClass !== null) body.saliency_classes = [chosenClass];
  try {
    const answer = await api(`/api/models/${current.name}/predict`, body);
    showError("");
    show(answer);
  } catch (error) {
    showError(error.message);
  } finally {
    inFlight = false;
    if (again) predictSoon();
  }
}

function show(answer) {
  lastAnswer = answer;
  // null: the model computed NaN or infinity (the warnings say in which layer).
  $("prediction").textContent = answer.predicted === null ? "no prediction: NaN or infinity (see the warnings)"
    : answer.class_names[answer.predicted];
  drawImage($("seen"), answer.input, (v) => { const g = 255 * Math.max(0, Math.min(1, v)); return [g, g, g]; });
  showBars(answer);
  showSaliency(answer);
  showLayers(answer.layers);
  // handgrad trace's warnings, computed on this one image (so "dead" means 0 for this image).
  $("warnings").replaceChildren(...answer.warnings.map((w) => Object.assign(document.createElement("li"), {
    textContent: w, title: "handgrad trace on this one image, backward from the predicted class"})));
}

function showBars(answer) {
  const rows = answer.probabilities.map((p, c) => {
    const row = document.createElement("div");
    row.className = "bar" + (c === answer.predicted ? " top" : "") + (c === chosenClass ? " chosen" : "");
    row.dataset.probability = p;
    row.dataset.class = c;
    row.title = `saliency map of ${answer.class_names[c]}`;
    const label = Object.assign(document.createElement("span"), {textContent: answer.class_names[c]});
    const track = document.createElement("div");
    const fill = Object.assign(document.createElement("div"), {className: "fill"});
    fill.style.width = p === null ? "0%" : `${(100 * p).toFixed(2)}%`;
    track.append(fill);
    const value = Object.assign(document.createElement("span"), {className: "value",
      textContent: p === null ? "NaN" : `${(100 * p).toFixed(1)}%`});
    row.append(label, track, value);
    row.addEventListener("click", () => { chosenClass = c === chosenClass ? null : c; predictSoon(); });
    return row;
  });
  $("bars").replaceChildren(...rows);
}

function showSaliency(answer) {
  const wanted = chosenClass ?? answer.predicted;
  const map = answer.saliency.find((s) => s.class === wanted) || answer.saliency[0];
  if (!map) {  // no predicted class, and none chosen
    $("saliency").getContext("2d").clearRect(0, 0, 168, 168);
    $("saliency-class").textContent = "";
    return;
  }
  const values = flat(map.gradient);
  const m = Math.max(...values.map(Math.abs)) || 1;
  drawImage($("saliency"), map.gradient, (v) => {
    const t = Math.min(1, Math.abs(v) / m);
    return v >= 0 ? [255, 255 * (1 - t), 255 * (1 - t)] : [255 * (1 - t), 255 * (1 - 0.6 * t), 255];
  });
  $("saliency-class").textContent = `of ${answer.class_names[map.class]}` + (map.class === answer.predicted ? " (predicted)" : "");
}

// Each layer's output for this image: C feature maps (C, H, W), one map (T, F), or a row of units.
function showLayers(layers) {
  const boxes = layers.map((layer) => {
    const box = Object.assign(document.createElement("div"), {className: "layer"});
    const values = flat(layer.values);
    const shape = layer.shape;
    box.append(Object.assign(document.createElement("h3"), {textContent: `${layer.index} ${layer.name} (${shape.join("×")})`}));
    const canvas = document.createElement("canvas");
    canvas.className = "layer-canvas";
    const ctx = () => canvas.getContext("2d");
    const colour = colourScale(values);
    if (shape.length === 3) {
      const [C, H, W] = shape;
      const cell = Math.max(1, Math.floor(56 / Math.max(H, W)));
      const perRow = Math.min(C, Math.max(1, Math.floor(560 / (W * cell + 4))));
      const gridRows = Math.ceil(C / perRow);
      canvas.width = perRow * (W * cell + 4); canvas.height = gridRows * (H * cell + 4);
      const context = ctx();
      context.fillStyle = "#fff"; context.fillRect(0, 0, canvas.width, canvas.height);
      for (let c = 0; c < C; c++) {
        const x0 = (c % perRow) * (W * cell + 4), y0 = Math.floor(c / perRow) * (H * cell + 4);
        drawGrid(context, values.slice(c * H * W, (c + 1) * H * W), H, W, cell, x0, y0, colour);
      }
    } else {
      const [rows, cols] = shape.length === 2 ? shape : [Math.ceil(values.length / Math.min(values.length, 40)), Math.min(values.length, 40)];
      const cell = Math.max(2, Math.min(14, Math.floor(560 / cols)));
      canvas.width = cols * cell; canvas.height = rows * cell;
      drawGrid(ctx(), values, rows, cols, cell, 0, 0, colour);
    }
    let lo = Math.min(...values), hi = Math.max(...values);
    box.append(canvas, Object.assign(document.createElement("p"), {className: "note", textContent: `min ${lo.toPrecision(3)}, max ${hi.toPrecision(3)}`}));
    return box;
  });
  $("layers").replaceChildren(...boxes);
}

// --- text models: streamed generation, token probabilities, attention -------------------------------

let controller = null;

$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => controller && controller.abort());
$("show-attention").addEventListener("click", () => showAttention(textSoFar()));

function textSoFar() {
  return $("prompt").value + [...$("output").querySelectorAll(".tok")].map((t) => t.dataset.token).join("");
}

async function generate() {
  const seed = $("seed").value;
  const body = {prompt: $("prompt").value, length: Number($("length").value), temperature: Number($("temperature").value),
                top_k: $("top-k").value ? Number($("top-k").value) : null, seed: seed === "" ? null : Number(seed)};
  const output = $("output");
  output.replaceChildren(Object.assign(document.createElement("span"), {className: "prompt", textContent: body.prompt}));
  $("attention").replaceChildren();
  controller = new AbortController();
  $("generate").disabled = true; $("stop").disabled = false;
  try {
    const response = await fetch(`/api/models/${current.name}/generate`, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), signal: controller.signal});
    if (!response.ok) {
      const answer = await response.json().catch(() => ({detail: response.statusText}));
      throw new Error(answer.detail);
    }
    showError("");
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1], data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === "token") output.append(tokenSpan(JSON.parse(data)));
        if (event === "error") throw new Error(JSON.parse(data).detail);  // the model computed NaN
      }
    }
    await showAttention(textSoFar());
  } catch (error) {
    if (error.name !== "AbortError") showError(error.message);
  } finally {
    $("generate").disabled = false; $("stop").disabled = true; controller = null;
  }
}

function tokenSpan(token) {
  const span = document.createElement("span");
  span.className = "tok";
  span.textContent = token.token === "\n" ? "↵\n" : token.token;
  span.dataset.token = token.token;
  span.dataset.probability = token.probability;
  // Confident characters dark green, unlikely ones pale: the model's own probability of each.
  span.style.background = `rgba(46, 160, 67, ${(0.08 + 0.6 * token.probability).toFixed(3)})`;
  span.top5 = token.top;
  span.addEventListener("mouseenter", (event) => showTooltip(span, event));
  span.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  return span;
}

function visible(ch) { return ch === "\n" ? "↵" : ch === " " ? "␣" : ch; }

function showTooltip(span, event) {
  const tip = $("tooltip");
  tip.replaceChildren(Object.assign(document.createElement("div"), {
    textContent: `${visible(span.dataset.token)}: ${(100 * span.dataset.probability).toFixed(1)}%, the 5 most likely:`}));
  for (const alt of span.top5) {
    tip.append(Object.assign(document.createElement("div"), {
      className: alt.token === span.dataset.token ? "chosen" : "",
      textContent: `${visible(alt.token)}  ${(100 * alt.probability).toFixed(1)}%`}));
  }
  tip.style.left = `${event.clientX + 12}px`; tip.style.top = `${event.clientY + 12}px`;
  tip.hidden = false;
}

async function showAttention(text) {
  try {
    const answer = await api(`/api/models/${current.name}/attention`, {prompt: text});
    const T = answer.tokens.length, cell = Math.max(2, Math.floor(192 / T));
    const layers = answer.weights.map((heads, layer) => {
      const row = Object.assign(document.createElement("div"), {className: "heads"});
      heads.forEach((weights, head) => {
        const figure = document.createElement("figure");
        const canvas = document.createElement("canvas");
        canvas.className = "attention-canvas";
        canvas.width = T * cell; canvas.height = T * cell;
        drawGrid(canvas.getContext("2d"), flat(weights), T, T, cell, 0, 0, (v) => { const g = 255 * (1 - v); return [g, g, g]; });
        canvas.title = `layer ${layer}, head ${head} on ${JSON.stringify(answer.tokens.join(""))}`;
        figure.append(canvas, Object.assign(document.createElement("figcaption"), {textContent: `layer ${layer}, head ${head}`}));
        row.append(figure);
      });
      return row;
    });
    const caption = Object.assign(document.createElement("p"), {className: "note",
      textContent: `on ${JSON.stringify(answer.tokens.join(""))}` + (answer.start ? ` (the last ${T} characters: the model's context)` : "")});
    $("attention").replaceChildren(caption, ...layers);
  } catch (error) { showError(error.message); }
}

start();
