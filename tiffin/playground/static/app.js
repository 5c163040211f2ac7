// The tiffin playground: every model through the typed endpoints, from the API's own schema.
// Every URL is relative, so the page works under any prefix a proxy puts in front of it.
"use strict";

const KEY_STORE = "tiffin-api-key";
const $ = (id) => document.getElementById(id);

function headers(extra) {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

function element(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props || {});
  for (const child of children) node.append(child);
  return node;
}

// POST to an endpoint; answers {ok, status, body, ms}, never throws for an HTTP error.
async function call(path, init) {
  const start = performance.now();
  const response = await fetch(path, { method: "POST", ...init });
  const ms = performance.now() - start;
  let body;
  try {
    body = await response.json();
  } catch {
    body = { error: `HTTP ${response.status}: the answer is not JSON` };
  }
  return { ok: response.ok, status: response.status, body, ms };
}

function meta(answer, extra) {
  const parts = [`latency ${answer.ms.toFixed(1)} ms`, `batch of ${answer.body.batch_size}`, `model ${answer.body.model}`];
  return element("p", { className: "meta" }, [...(extra || []), ...parts].join(" · "));
}

function failure(target, answer) {
  const detail = (answer.body.detail || []).map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  target.replaceChildren(element("p", { className: "error", role: "alert" },
    `${answer.status}: ${answer.body.error || "refused"}${detail ? ` (${detail})` : ""}`));
}

function bars(probabilities) {
  const grid = element("div", { className: "bars" });
  const ranked = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  ranked.forEach(([name, p], i) => {
    const id = `bar-${i}`;
    grid.append(element("label", { htmlFor: id }, name),
      element("progress", { id, max: 1, value: p }),
      element("span", {}, `${(100 * p).toFixed(1)} %`));
  });
  return grid;
}

// --- images ------------------------------------------------------------------------------

async function showPreview(blob) {
  const canvas = $("image-preview");
  const bitmap = await createImageBitmap(blob);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const scale = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
  const w = bitmap.width * scale, h = bitmap.height * scale;
  ctx.drawImage(bitmap, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  bitmap.close();
}

async function classifyImage(blob, name) {
  const target = $("image-result");
  target.replaceChildren(element("p", { className: "meta" }, "classifying…"));
  const form = new FormData();
  form.append("image", blob, name);
  const answer = await call("../classify_image", { body: form, headers: headers() });
  if (!answer.ok) return failure(target, answer);
  target.replaceChildren(element("p", { className: "answer", id: "image-label" }, answer.body.label),
    bars(answer.body.probabilities), meta(answer));
  try {
    await showPreview(blob);
  } catch {
    // the server read it, the browser could not draw it (e.g. a JPEG variant): the answer stands
  }
}

function imageFile(file) {
  if (!file) return;
  classifyImage(file, file.name || "upload");
}

function setUpUpload() {
  const drop = $("drop");
  const input = $("image-file");
  input.addEventListener("change", () => imageFile(input.files[0]));
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    imageFile(event.dataTransfer.files[0]);
  });
}

// A 28x28 sketch, shown 10x: light strokes on black, as Fashion-MNIST draws its garments.
function setUpSketch() {
  const canvas = $("sketch");
  const ctx = canvas.getContext("2d");
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  };
  clear();
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 22;
  ctx.lineCap = ctx.lineJoin = "round";
  let drawing = false;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.moveTo(...point(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    ctx.lineTo(...point(event));
    ctx.stroke();
  });
  const stop = () => { drawing = false; };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("sketch-clear").addEventListener("click", clear);
  $("sketch-send").addEventListener("click", () => {
    // downscaled here to the model's 28x28, so what is sent is what the model sees
    const small = element("canvas", { width: 28, height: 28 });
    const sctx = small.getContext("2d");
    sctx.imageSmoothingQuality = "high";
    sctx.drawImage(canvas, 0, 0, 28, 28);
    small.toBlob((blob) => classifyImage(blob, "sketch.png"), "image/png");
  });
}

// --- text and demand: forms from the API's OpenAPI schema -----------------------------------

function requestSchema(doc, path) {
  let schema = doc.paths[path].post.requestBody.content["application/json"].schema;
  if (schema.$ref) schema = schema.$ref.split("/").slice(1).reduce((node, part) => node[part], doc);
  return schema;
}

function setUpText(schema) {
  const tier = $("tier");
  for (const name of schema.properties.tier.enum) tier.append(element("option", { value: name }, name));
  tier.value = (schema.example && schema.example.tier) || schema.properties.tier.default;
  $("review").value = (schema.example && schema.example.text) || "";
  $("review").maxLength = schema.properties.text.maxLength;
  $("text-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const target = $("text-result");
    target.replaceChildren(element("p", { className: "meta" }, "classifying…"));
    const asked = tier.value;
    const answer = await call("../classify_text", {
      body: JSON.stringify({ text: $("review").value, tier: asked }),
      headers: headers({ "Content-Type": "application/json" }),
    });
    if (!answer.ok) return failure(target, answer);
    const escalated = asked === "auto" && answer.body.tier === "large";
    target.replaceChildren(
      element("p", { className: "answer", id: "text-label" }, `${answer.body.label} (p = ${answer.body.probability.toFixed(3)})`),
      meta(answer, [`tier ${answer.body.tier} answered`, asked === "auto" ? (escalated ? "the cascade escalated" : "no escalation") : "no cascade"]));
  });
}

function field(name, prop, example) {
  const id = `demand-${name}`;
  let input;
  if (prop.enum) {
    input = element("select", { id, name });
    for (const value of prop.enum) input.append(element("option", { value }, value));
  } else {
    input = element("input", { id, name, type: "number", required: true, step: prop.type === "integer" ? "1" : "0.01" });
    if (prop.minimum !== undefined) input.min = prop.minimum;
    if (prop.maximum !== undefined) input.max = prop.maximum;
  }
  input.value = example !== undefined ? example : (prop.default !== undefined ? prop.default : (prop.minimum || 0));
  input.dataset.kind = prop.enum ? "string" : prop.type;
  const help = element("span", { className: "help", id: `${id}-help` }, prop.description || "");
  input.setAttribute("aria-describedby", help.id);
  return element("div", {}, element("label", { htmlFor: id }, name), input, help);
}

function setUpDemand(schema) {
  const fields = $("demand-fields");
  const example = schema.example || {};
  for (const [name, prop] of Object.entries(schema.properties)) fields.append(field(name, prop, example[name]));
  $("demand-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const row = {};
    for (const input of fields.querySelectorAll("input, select")) {
      row[input.name] = input.dataset.kind === "string" ? input.value : Number(input.value);
    }
    const target = $("demand-result");
    target.replaceChildren(element("p", { className: "meta" }, "predicting…"));
    const answer = await call("../predict_demand", {
      body: JSON.stringify(row), headers: headers({ "Content-Type": "application/json" }),
    });
    if (!answer.ok) return failure(target, answer);
    target.replaceChildren(element("p", { className: "answer", id: "demand-answer" }, `${answer.body.bikers.toFixed(1)} bikers`),
      meta(answer));
  });
}

async function start() {
  const key = $("api-key");
  key.value = sessionStorage.getItem(KEY_STORE) || "";
  key.addEventListener("input", () => sessionStorage.setItem(KEY_STORE, key.value));
  setUpUpload();
  setUpSketch();
  const response = await fetch("../docs.json", { headers: headers() });
  const doc = await response.json();
  // example values come from the request models (DemandFeatures, TextRequest): one definition
  setUpText(requestSchema(doc, "/classify_text"));
  setUpDemand(requestSchema(doc, "/predict_demand"));
  document.body.dataset.ready = "true";
}

start();
