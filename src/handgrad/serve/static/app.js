// handgrad's page: draw a digit (type a prompt, or ask for new words) and watch what the served model computes.
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

// What each image model learned, as the picker names it.
const DATASETS = {digits: "digits (UCI 8x8)", mnist: "MNIST 28x28", "fashion-mnist": "Fashion-MNIST 28x28"};

function learned(m) {
  if (m.kind === "image") return DATASETS[m.dataset] || m.dataset;
  return m.kind === "words" ? `words (${m.source})` : `text (${m.dataset || "characters"})`;
}

function percent(share) { return `${Math.round(100 * share)} %`; }

// The picker's line for a model: its name, what it learned and, once the server has scored it,
// the share of handgrad's drawn test digits it recognises.
function pickerLabel(m) {
  return `${m.name}: ${learned(m)}` + (m.drawn ? `, ${percent(m.drawn.recognised)} of drawn digits` : "");
}

async function start() {
  try {
    models = await api("/api/models");
  } catch (error) { showError(`cannot list the models: ${error.message}`); return; }
  const select = $("model");
  for (const m of models) select.add(new Option(pickerLabel(m), m.name));
  select.addEventListener("change", () => choose(select.value));
  const wanted = new URLSearchParams(location.search).get("model");
  choose(models.some((m) => m.name === wanted) ? wanted : models[0].name);
  // Scored once per server (a few seconds the first time), the chosen model first: the picker
  // and the note follow.
  const scored = models.filter((m) => m.reads_digits).sort((a, b) => (b === current) - (a === current));
  for (const m of scored) {
    try {
      m.drawn = await api(`/api/models/${m.name}/drawn-digits`);
    } catch (error) { m.drawn = {error: error.message}; }
    if (m.drawn.error === undefined) select.options[models.indexOf(m)].text = pickerLabel(m);
    if (current === m) showDrawnNote(m);
  }
}

// What the chosen model learned and how well it reads drawings (handgrad's drawn test digits,
// drawn as on this canvas and prepared as a drawing is).
function showDrawnNote(m) {
  const note = $("drawn-note");
  note.dataset.recognised = m.drawn && m.drawn.recognised !== undefined ? m.drawn.recognised : "";
  if (!m.reads_digits) { note.textContent = `Learned ${learned(m)}.`; return; }
  if (!m.drawn) { note.textContent = `Learned ${learned(m)}; scoring it on handgrad's drawn test digits…`; return; }
  if (m.drawn.error !== undefined) { note.textContent = `Learned ${learned(m)}; not scored on drawings: ${m.drawn.error}`; return; }
  const per = m.drawn.per_digit.map((share, digit) => [share, digit]).filter(([share]) => share !== null);
  const [worst, digit] = per.reduce((a, b) => (b[0] < a[0] ? b : a));
  note.textContent = `Learned ${learned(m)}. Recognises ${percent(m.drawn.recognised)} of handgrad's ` +
    `${m.drawn.count} drawn test digits (drawn as on this canvas, prepared as your drawing is; ` +
    `weakest: ${digit} at ${percent(worst)}).` +
    (m.drawn.recognised < 0.9 ? " Drawings unlike the images it learned from fool it; a model trained on MNIST " +
      "(handgrad train --dataset mnist) reads drawings better." : "");
  note.title = per.map(([share, d]) => `${d}: ${percent(share)}`).join(", ");
}

function choose(name) {
  current = models.find((m) => m.name === name);
  unfolded.clear();
  $("model").value = name;
  showError("");
  $("image-view").hidden = current.kind !== "image";
  $("text-view").hidden = current.kind !== "text";
  $("words-view").hidden = current.kind !== "words";
  $("tooltip").hidden = true;
  if (current.kind === "image") {
    const [h, w] = current.image_shape;
    $("model-info").textContent = `${current.parameters.toLocaleString()} parameters; ${current.layers.join(" → ")}`;
    $("seen-caption").textContent = `${h}x${w}, as the ${current.dataset} images were made` +
      (h === 28 ? " (cropped, scaled to 20x20, centred by its centre of mass)"
        : " (cropped, sheared upright, scaled to 32 pixels tall and at most 18 wide, strokes evened to UCI's ink, " +
          "counted in 4x4 blocks)");
    showDrawnNote(current);
    clearDrawing();
    // Decided when the server started: no test images here means a disabled button that says why.
    const missing = current.test_images_missing;
    $("random").disabled = Boolean(missing);
    $("random").title = missing || `a random image of the ${current.dataset} test set, with its true label`;

  } else if (current.kind === "text") {
    $("model-info").textContent = current.description;
    $("length").max = current.max_new_tokens;
  } else {
    chooseWords(current);
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
  $("truth").textContent = current && current.test_images_missing
    ? `Random test image is off: ${current.test_images_missing}.` : "";
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
    } else if (shape.length === 2) {
      const [rows, cols] = shape;
      const cell = Math.max(2, Math.min(14, Math.floor(560 / cols)));
      canvas.width = cols * cell; canvas.height = rows * cell;
      drawGrid(ctx(), values, rows, cols, cell, 0, 0, colour);
    } else {
      const folded = values.length > FOLDED_UNITS && !unfolded.has(layer.index);
      drawUnits(canvas, folded ? values.slice(0, FOLDED_UNITS) : values, colour);
    }
    const summary = summarise(values);
    box.append(canvas, Object.assign(document.createElement("p"), {className: "note", textContent: summary}));
    if (shape.length === 1 && values.length > FOLDED_UNITS) box.append(foldToggle(canvas, values, colour, box, layer.index));
    return box;
  });
  $("layers").replaceChildren(...boxes);
}

// A row of units longer than this (a ConvNet's Flatten: 4,320) shows its first ones, folded,
// until asked for all: unfolded it would make the page thousands of pixels tall.
const FOLDED_UNITS = 400;
const UNITS_PER_ROW = 40;
// The layers shown unfolded, by index: kept while the answers to a drawing come in, reset for another model.
const unfolded = new Set();

// `values` as rows of UNITS_PER_ROW cells.
function drawUnits(canvas, values, colour) {
  const cols = Math.min(values.length, UNITS_PER_ROW), rows = Math.ceil(values.length / cols);
  const cell = Math.max(2, Math.min(14, Math.floor(560 / cols)));
  canvas.width = cols * cell; canvas.height = rows * cell;
  drawGrid(canvas.getContext("2d"), values, rows, cols, cell, 0, 0, colour);
}

function summarise(values) {
  let lo = Infinity, hi = -Infinity, sum = 0, zeros = 0;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; sum += v; if (v === 0) zeros++; }
  return `min ${lo.toPrecision(3)}, max ${hi.toPrecision(3)}, mean ${(sum / values.length).toPrecision(3)}` +
    (zeros ? `, ${(100 * zeros / values.length).toFixed(0)} % zeros` : "");
}

// The button that shows all of a long row of units, or folds it back to its first FOLDED_UNITS.
function foldToggle(canvas, values, colour, box, index) {
  const button = Object.assign(document.createElement("button"), {type: "button", className: "fold"});
  const label = (folded) => folded ? `first ${FOLDED_UNITS} of ${values.length.toLocaleString()} units shown: show all`
    : `all ${values.length.toLocaleString()} units shown: fold to the first ${FOLDED_UNITS}`;
  box.dataset.folded = String(!unfolded.has(index));
  button.textContent = label(!unfolded.has(index));
  button.addEventListener("click", () => {
    const folded = !unfolded.has(index);   // before the click
    if (folded) unfolded.add(index); else unfolded.delete(index);
    box.dataset.folded = String(!folded);
    drawUnits(canvas, folded ? values : values.slice(0, FOLDED_UNITS), colour);
    button.textContent = label(!folded);
  });
  return button;
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

// --- word models (makemore): new words, each character's probability, each word's group ---------------

// How each word's group reads on the page: makemore prints the same three.
const GROUPS = {train: "in the training set", test: "in the test set", new: "new"};
// The end of a word (id 0), as Zero to Hero writes it.
const END = ".";

$("generate-words").addEventListener("click", generateWords);

function chooseWords(m) {
  $("model-info").textContent = m.description;   // its parameters included
  $("words-source").textContent = `(learned from ${m.source}, ${m.split} split; ${m.characters.length} characters, ` +
    `at most ${m.max_length} a word)`;
  $("word-count").max = m.max_count;
  $("word-top-k").max = m.characters.length + 1;
  // Decided when the server started: without the words it learned, no word can be marked.
  $("groups-note").textContent = m.groups ? "Each word is marked as makemore marks it: in the training set, in the " +
    "test set, or new." : `The words are not marked (in the training set, in the test set, new): ${m.groups_missing}.`;
  $("words").replaceChildren();
  $("words-summary").textContent = "";
}

async function generateWords() {
  const seed = $("word-seed").value, topK = $("word-top-k").value, temperature = $("word-temperature").value;
  const body = {count: Number($("word-count").value), temperature: temperature === "" ? 1 : Number(temperature),
                top_k: topK === "" ? null : Number(topK), seed: seed === "" ? null : Number(seed)};
  const asked = current.name;
  $("generate-words").disabled = true;
  try {
    const answer = await api(`/api/models/${asked}/words`, body);
    if (current.name !== asked) return;   // another model was chosen meanwhile
    showError("");
    showWords(answer);
  } catch (error) {
    showError(error.message);
  } finally {
    $("generate-words").disabled = false;
  }
}

function showWords(answer) {
  const items = answer.words.map((w) => {
    const item = document.createElement("li");
    item.dataset.word = w.word;
    item.append(...w.characters.map(characterSpan));
    if (!w.ended) {
      item.append(Object.assign(document.createElement("span"), {className: "cut",
        textContent: `(cut at ${w.characters.length} characters)`,
        title: "the longest word it learned: makemore draws no more, so the end was never drawn"}));
    }
    if (w.group !== null) {
      item.dataset.group = w.group;
      item.append(Object.assign(document.createElement("span"), {className: `group ${w.group}`, textContent: GROUPS[w.group]}));
    }
    return item;
  });
  $("words").replaceChildren(...items);
  const count = (group) => answer.words.filter((w) => w.group === group).length;
  $("words-summary").textContent = `${answer.words.length} words` + (answer.groups_missing !== null ? "" :
    `: ${count("train")} in the training set, ${count("test")} in the test set, ${count("new")} new`);
}

function characterSpan(c) {
  const span = document.createElement("span");
  span.className = c.id === 0 ? "tok end" : "tok";
  span.textContent = c.id === 0 ? END : c.character;
  span.dataset.id = c.id;
  span.dataset.probability = c.probability;
  // As the text view: confident characters dark green, unlikely ones pale.
  span.style.background = `rgba(46, 160, 67, ${(0.08 + 0.6 * c.probability).toFixed(3)})`;
  span.addEventListener("mouseenter", (event) => showWordTooltip(c, event));
  span.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  return span;
}

function characterName(c) { return c.id === 0 ? `${END} (the end of the word)` : visible(c.character); }

function showWordTooltip(c, event) {
  const tip = $("tooltip");
  tip.replaceChildren(Object.assign(document.createElement("div"), {
    textContent: `${characterName(c)}: ${(100 * c.probability).toFixed(1)}%, the 5 most likely:`}));
  for (const alt of c.top) {
    tip.append(Object.assign(document.createElement("div"), {
      className: alt.id === c.id ? "chosen" : "",
      textContent: `${characterName(alt)}  ${(100 * alt.probability).toFixed(1)}%`}));
  }
  tip.style.left = `${event.clientX + 12}px`; tip.style.top = `${event.clientY + 12}px`;
  tip.hidden = false;
}

// The margin of an attention picture that holds its characters (rows: the position looking;
// columns: the position looked at), and the smallest cell whose every character is written.
const AXIS = 14, LABELLED_CELL = 7;

// One head's weights (T x T) with the characters on both axes, as handgrad plot --what attention
// draws them: every character when the cells are large enough, else every k-th (the others are
// in the tooltip of each cell).
function drawAttention(canvas, weights, tokens, cell) {
  const T = tokens.length;
  canvas.width = AXIS + T * cell; canvas.height = AXIS + T * cell;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawGrid(ctx, flat(weights), T, T, cell, AXIS, AXIS, (v) => { const g = 255 * (1 - v); return [g, g, g]; });
  const every = Math.max(1, Math.ceil(LABELLED_CELL / cell));
  ctx.fillStyle = "#1d2330";
  ctx.font = `${Math.min(11, Math.max(7, cell))}px ui-monospace, monospace`;
  ctx.textAlign = "center"; ctx.textBaseline = "middle";
  for (let i = 0; i < T; i += every) {
    const ch = visible(tokens[i]), middle = AXIS + (i + 0.5) * cell;
    ctx.fillText(ch, middle, AXIS / 2);   // columns: the position looked at
    ctx.fillText(ch, AXIS / 2, middle);   // rows: the position looking
  }
  canvas.dataset.characters = tokens.join("");
  canvas.dataset.labelledEvery = every;
}

function attentionTooltip(canvas, weights, tokens, cell, event) {
  const box = canvas.getBoundingClientRect();
  const x = (event.clientX - box.left) * canvas.width / box.width - AXIS;
  const y = (event.clientY - box.top) * canvas.height / box.height - AXIS;
  const row = Math.floor(y / cell), col = Math.floor(x / cell);
  if (row < 0 || col < 0 || row >= tokens.length || col >= tokens.length) { $("tooltip").hidden = true; return; }
  const tip = $("tooltip");
  tip.textContent = `${visible(tokens[row])} (position ${row}) looks at ${visible(tokens[col])} (position ${col}): ` +
    `${(100 * weights[row][col]).toFixed(1)} %`;
  tip.style.left = `${event.clientX + 12}px`; tip.style.top = `${event.clientY + 12}px`;
  tip.hidden = false;
}

async function showAttention(text) {
  try {
    const answer = await api(`/api/models/${current.name}/attention`, {prompt: text});
    const T = answer.tokens.length, cell = Math.max(3, Math.min(16, Math.floor(288 / T)));
    const layers = answer.weights.map((heads, layer) => {
      const row = Object.assign(document.createElement("div"), {className: "heads"});
      heads.forEach((weights, head) => {
        const figure = document.createElement("figure");
        const canvas = document.createElement("canvas");
        canvas.className = "attention-canvas";
        drawAttention(canvas, weights, answer.tokens, cell);
        canvas.addEventListener("mousemove", (event) => attentionTooltip(canvas, weights, answer.tokens, cell, event));
        canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
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
