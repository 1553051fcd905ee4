// The CPU engine on a Web Worker with threads: the threaded package (pkg-threads, built by
// scripts/build_web.sh with wasm atomics) and rayon's pool of Web Workers. A page's main thread
// may not block, so the engine runs here, where waiting for the pool is allowed; main.js
// (`WorkerModel`) talks to it with messages {id, op, ...} and gets {id, ok, result | error}.
import init, { Model, initThreadPool } from "./pkg-threads/wunet.js";

let model = null;
const ready = (async () => {
  await init();
  await initThreadPool(navigator.hardwareConcurrency);
})();

const ops = {
  async ping() {
    return navigator.hardwareConcurrency;
  },
  async load(m) {
    // A model that fails to load leaves the previous one in place, as on the main thread.
    const loaded = await Model.load(m.bytes, "cpu");
    model?.free();
    model = loaded;
    return model.info();
  },
  infer: (m) => model.infer(m.data, m.shape),
  segment: (m) => model.segment(m.image),
  async flops(m) {
    return model.flops(m.h, m.w);
  },
};

onmessage = async ({ data: m }) => {
  try {
    await ready;
    postMessage({ id: m.id, ok: true, result: await ops[m.op](m) });
  } catch (e) {
    postMessage({ id: m.id, ok: false, error: String(e.message ?? e) });
  }
};
