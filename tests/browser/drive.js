// Drive a wunet page in Debian's headless Chromium (WebGPU on SwiftShader) and print its result.
//   node drive.js URL [timeout_s]
// Exit code 1 when the page reports ok: false, times out, or logs any console error.
const { chromium } = require("playwright-core");

const url = process.argv[2];
const timeout = parseFloat(process.argv[3] || "600") * 1000;
(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    timeout: 120000,
    // WUNET_NO_WEBGPU=1: a browser without WebGPU (the page falls back to the CPU engine).
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run"].concat(process.env.WUNET_NO_WEBGPU === "1"
      ? ["--disable-features=WebGPU"]
      : ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader",
        "--use-webgpu-adapter=swiftshader", "--disable-vulkan-surface"]),
  });
  const page = await browser.newPage();
  const errors = [];
  page.on("console", (m) => {
    console.log(`console.${m.type()}: ${m.text().slice(0, 2000)}`);
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => { console.log(`pageerror: ${e.message}`); errors.push(e.message); });
  page.on("response", (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.url()}`); });
  const t0 = Date.now();
  await page.goto(url, { timeout: 120000 });
  await page.waitForFunction(() => document.getElementById("out").textContent !== "pending",
    null, { timeout, polling: 500 });
  const text = await page.textContent("#out");
  console.log(`RESULT ${text.replace(/\s*\n\s*/g, " ")}`);
  console.log(`wall_s ${(Date.now() - t0) / 1000}`);
  await browser.close();
  const result = JSON.parse(text);
  if (!result.ok || errors.length) {
    console.error(`FAIL: ok=${result.ok}, console errors: ${JSON.stringify(errors)}`);
    process.exit(1);
  }
})().catch((e) => { console.error(`FAIL ${e.message}`); process.exit(1); });
