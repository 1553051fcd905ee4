// The demo page, the benchmark (?bench=1) and the browser test (?test=1): no bundler, the
// wasm-bindgen package in ./pkg (scripts/build_web.sh).
import init, { Model, measurePeak } from "./pkg/wunet.js";
import { threaded as threadsBuilt } from "./pkg/threads.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// The CPU engine with threads. A cross-origin isolated page (SharedArrayBuffer) runs it on a Web
// Worker (cpu_worker.js: the threaded package, web/pkg-threads, and rayon's pool), since this
// thread may not block; elsewhere, without that package, or with ?threads=0, it runs here on one
// thread.
let worker = null;
let starting = null;
let nextId = 0;
const pending = new Map();

function call(op, args) {
  return new Promise((resolve, reject) => {
    if (!worker) {
      reject(new Error("the CPU worker stopped"));
      return;
    }
    const id = nextId++;
    pending.set(id, { resolve, reject });
    try {
      worker.postMessage({ id, op, ...args });
    } catch (e) {
      pending.delete(id);
      reject(e);
    }
  });
}

// A worker that fails takes its calls with it: they reject, and later loads run on this thread.
function workerFailed(why) {
  worker?.terminate();
  worker = null;
  for (const p of pending.values()) p.reject(new Error(`the CPU worker stopped: ${why}`));
  pending.clear();
}

// Whether the threaded worker runs (started once; false where it cannot, remembered).
function threadedWorker() {
  starting ??= (async () => {
    if (!threadsBuilt || !self.crossOriginIsolated || params.get("threads") === "0") return false;
    const w = new Worker(new URL("./cpu_worker.js", import.meta.url), { type: "module" });
    const ok = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 60000);
      w.onerror = () => { clearTimeout(timer); resolve(false); };
      w.onmessage = ({ data }) => { clearTimeout(timer); resolve(data.ok); };
      w.postMessage({ id: -1, op: "ping" });
    });
    if (!ok) {
      w.terminate();
      return false;
    }
    w.onmessage = ({ data }) => {
      const p = pending.get(data.id);
      pending.delete(data.id);
      if (data.ok) p?.resolve(data.result);
      else p?.reject(new Error(data.error));
    };
    w.onerror = (e) => workerFailed(e.message ?? "error");
    w.onmessageerror = () => workerFailed("a message could not be read");
    worker = w;
    return true;
  })();
  return starting.then((ok) => ok && worker !== null);
}

// `Model`'s methods, run by the worker (all async but `info`).
class WorkerModel {
  constructor(info) {
    this.cached = info;
  }
  static async load(bytes) {
    return new WorkerModel(await call("load", { bytes }));
  }
  info() {
    return this.cached;
  }
  infer(data, shape) {
    return call("infer", { data, shape });
  }
  segment(image) {
    return call("segment", { image });
  }
  flops(h, w) {
    return call("flops", { h, w });
  }
}

// `Model.load`, with the CPU engine on the threaded worker where there is no WebGPU (or
// `device` is "cpu") and the worker runs.
let webgpu = null;
async function loadModel(bytes, device = "auto") {
  // Whether there is a WebGPU adapter: asked once per page.
  webgpu ??= (async () => !!(navigator.gpu && await navigator.gpu.requestAdapter()))();
  const cpu = device === "cpu" || (device === "auto" && !(await webgpu));
  if (cpu && await threadedWorker()) return WorkerModel.load(bytes);
  return Model.load(bytes, device);
}
const status = (s) => { $("status").textContent = s; };
const done = (obj) => { $("out").textContent = JSON.stringify(obj, null, 1); };

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// A little-endian float32 .npy: its shape and data.
function parseNpy(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + hlen));
  if (!header.includes("'<f4'")) throw new Error(`npy: only little-endian float32 (${header})`);
  const shape = header.match(/\(([^)]*)\)/)[1].split(",").filter((s) => s.trim()).map(Number);
  const data = new Float32Array(bytes.slice(start + hlen).buffer);
  return { shape, data };
}

async function imageData(url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  const c = new OffscreenCanvas(img.naturalWidth, img.naturalHeight);
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, c.width, c.height);
}

// Draw the picture, and the picture with the mask over it; returns the opaque mask pixels.
function draw(picture, mask) {
  for (const id of ["image", "overlay"]) {
    $(id).width = picture.width;
    $(id).height = picture.height;
  }
  $("image").getContext("2d").putImageData(picture, 0, 0);
  const ctx = $("overlay").getContext("2d");
  ctx.putImageData(picture, 0, 0);
  const layer = new OffscreenCanvas(mask.width, mask.height);
  layer.getContext("2d").putImageData(mask, 0, 0);
  ctx.globalAlpha = 0.5;
  ctx.drawImage(layer, 0, 0);
  ctx.globalAlpha = 1;
  let n = 0;
  for (let i = 3; i < mask.data.length; i += 4) n += mask.data[i] > 0 ? 1 : 0;
  return n;
}

function describe(model) {
  const i = model.info();
  const sg = i.subgroup_size ? `, subgroups of ${i.subgroup_size}` : "";
  const threads = i.path === "cpu" ? `, ${i.threads} thread${i.threads > 1 ? "s" : ""}` : "";
  return `${i.path === "webgpu" ? "WebGPU on " + i.adapter : "CPU engine (wasm; no WebGPU adapter)"}, ${i.precision}${sg}${threads}`;
}

async function demo() {
  let model = await loadModel(await fetchBytes(params.get("model") || "assets/demo_unet.safetensors"));
  let picture = await imageData("assets/cells.png");
  const run = async () => {
    const t = performance.now();
    const mask = await model.segment(picture);
    const ms = performance.now() - t;
    draw(picture, mask);
    status(`${describe(model)}: ${picture.width}×${picture.height} in ${ms.toFixed(1)} ms`);
  };
  const t0 = performance.now();
  await run();
  $("status").textContent += ` (first inference, pipelines included: ${(performance.now() - t0).toFixed(0)} ms)`;
  const useFile = async (f) => {
    const url = URL.createObjectURL(f);
    try {
      picture = await imageData(url);
      await run();
    } catch (e) {
      status(`error: ${e.message ?? e}`);
    } finally {
      URL.revokeObjectURL(url);
    }
  };
  $("file").onchange = (e) => e.target.files[0] && useFile(e.target.files[0]);
  // A model file (safetensors or ONNX with its weights inside), picked or dropped.
  const useModelFile = async (f) => {
    try {
      model = await loadModel(new Uint8Array(await f.arrayBuffer()));
      await run();
    } catch (err) {
      status(`error: ${err.message ?? err}`);
    }
  };
  $("modelfile").onchange = (e) => e.target.files[0] && useModelFile(e.target.files[0]);
  const drop = $("drop");
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f && /\.(onnx|safetensors)$/i.test(f.name)) useModelFile(f);
    else if (f) useFile(f);
  };
  done({ ok: true, info: model.info() });
}

async function bench() {
  const size = Number(params.get("size") || 128);
  const runs = Number(params.get("runs") || 5);
  const bytes = await fetchBytes(params.get("model") || "assets/demo_unet.safetensors");
  // Loading: parsing, weights packed (and, for Winograd, transformed) and uploaded, pipelines.
  let t = performance.now();
  const model = await loadModel(bytes, params.get("device") || "auto");
  const load = performance.now() - t;
  let info = model.info();
  const shape = [1, info.in_channels, size, size];
  const x = new Float32Array(shape.reduce((a, b) => a * b));
  for (let i = 0; i < x.length; i++) x[i] = ((i * 0.618034) % 1) * 2 - 1;
  status(`${describe(model)}: measuring the FMA peak…`);
  const peak = await measurePeak();
  status(`${describe(model)}: first inference…`);
  t = performance.now();
  await model.infer(x, shape);
  const first = performance.now() - t;
  const times = [];
  for (let i = 0; i < runs; i++) {
    status(`${describe(model)}: run ${i + 1} of ${runs}…`);
    t = performance.now();
    await model.infer(x, shape);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const gflops = (await model.flops(size, size)) / (median * 1e-3) / 1e9;
  info = model.info();
  const out = { ok: true, ...info, size: `${size}x${size}`, runs, load_ms: load, first_run_ms: first,
    median_ms: median,
    min_ms: times[0], gflops, peak_gflops: peak, pct_peak: peak ? (100 * gflops) / peak : null };
  status(`${describe(model)}: median ${median.toFixed(1)} ms`);
  done(out);
}

// The browser test (tests/browser): every case of test/case.json through `infer`, compared with
// its expected logits; then the demo through `segment` and the overlay canvas.
async function test() {
  const spec = await (await fetch("test/case.json")).json();
  const cases = [];
  let ok = true;
  // Where the adapter offers subgroups of one size, the float32 WebGPU path must run the
  // subgroup kernels (wgpu cannot request the feature itself: src/gpu/adapter.rs asks for it),
  // and the cases marked `winograd` some layers as Winograd F(4×4, 3×3).
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  const subgroupsOffered = !!adapter && adapter.features.has("subgroups") &&
    adapter.info.subgroupMinSize === adapter.info.subgroupMaxSize;
  // In a cross-origin isolated page the CPU cases run on the worker with one thread per core,
  // unless the case says `"threads": false` (then on this thread, on one).
  const threaded = await threadedWorker();
  for (const c of spec.cases) {
    // Without WebGPU (a browser that lacks it), the GPU cases are skipped.
    if (c.device === "gpu" && !adapter) {
      cases.push({ name: c.name, skipped: "no WebGPU adapter" });
      continue;
    }
    const bytes = await fetchBytes(c.model);
    const model = c.threads === false ? await Model.load(bytes, c.device ?? "auto")
      : await loadModel(bytes, c.device ?? "auto");
    const x = parseNpy(await fetchBytes(c.input));
    const want = parseNpy(await fetchBytes(c.want));
    const got = await model.infer(x.data, x.shape);
    let maxDiff = 0, maxRef = 0, differ = 0;
    for (let i = 0; i < want.data.length; i++) {
      const d = Math.abs(got[i] - want.data[i]);
      maxDiff = Math.max(maxDiff, d);
      maxRef = Math.max(maxRef, Math.abs(want.data[i]));
      if (got[i] !== want.data[i]) differ++;
    }
    const info = model.info();
    // (Imported graphs run the general graph kernels, without subgroups.)
    const subgroupsOk = !(subgroupsOffered && info.path === "webgpu" && info.precision === "f32" && !info.graph) ||
      (info.subgroup_size !== null && (!c.winograd || info.winograd_layers > 0));
    const threadsOk = info.path !== "cpu" ||
      info.threads === (threaded && c.threads !== false ? navigator.hardwareConcurrency : 1);
    const pass = got.length === want.data.length && subgroupsOk && threadsOk &&
      (c.exact ? differ === 0 : maxDiff <= c.rel * maxRef);
    ok = ok && pass;
    cases.push({ name: c.name, info, max_diff: maxDiff, max_ref: maxRef, differ,
      subgroups_ok: subgroupsOk, threads_ok: threadsOk, pass });
  }
  // Errors arrive as exceptions with the CLI's message (after its "wunet: error: PATH: ").
  const cli = (await (await fetch("test/bad_cli.txt")).text()).trim();
  const reason = cli.slice(cli.indexOf(": ", cli.indexOf("error: ") + 7) + 2);
  let thrown = null;
  try {
    await Model.load(await fetchBytes("test/bad.safetensors"));
  } catch (e) {
    thrown = String(e.message ?? e);
  }
  // The same through the worker, where it runs.
  let thrownWorker = null;
  if (threaded) {
    try {
      await loadModel(await fetchBytes("test/bad.safetensors"), "cpu");
    } catch (e) {
      thrownWorker = String(e.message ?? e);
    }
  }
  const errorOk = thrown !== null && reason.length > 0 && thrown.includes(reason) &&
    (!threaded || (thrownWorker !== null && thrownWorker.includes(reason)));
  ok = ok && errorOk;
  // The demo's path: WebGPU, else the CPU engine (threaded where the page allows).
  const model = await loadModel(await fetchBytes("assets/demo_unet.safetensors"));
  const demoPathOk = model.info().path === (adapter ? "webgpu" : "cpu");
  ok = ok && demoPathOk;
  const picture = await imageData("assets/cells.png");
  const mask = await model.segment(picture);
  const maskPixels = draw(picture, mask);
  // The overlay canvas must show the mask: some of its pixels differ from the picture's.
  const shown = $("overlay").getContext("2d").getImageData(0, 0, picture.width, picture.height).data;
  let changed = 0;
  for (let i = 0; i < shown.length; i += 4) {
    if (shown[i] !== picture.data[i] || shown[i + 1] !== picture.data[i + 1]) changed++;
  }
  const overlayOk = maskPixels > 0 && changed > 0;
  ok = ok && overlayOk;
  status(ok ? "browser test passed" : "browser test FAILED");
  done({ ok, webgpu: !!adapter, subgroups_offered: subgroupsOffered, threaded, cases,
    error: { cli, page: thrown, worker: thrownWorker, ok: errorOk }, demo_path_ok: demoPathOk, mask_pixels: maskPixels,
    overlay_changed_pixels: changed, info: model.info() });
}

(async () => {
  try {
    await init();
    if (params.has("test")) await test();
    else if (params.has("bench")) await bench();
    else await demo();
  } catch (e) {
    status(`error: ${e.message ?? e}`);
    done({ ok: false, error: String(e.message ?? e) });
    console.error(e);
  }
})();
