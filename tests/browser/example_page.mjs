#!/usr/bin/env node
// Loads examples/browser/index.html (served by the caller) in Debian's headless chromium through
// playwright-core and waits for the page's own verdict: window.ferryExample.done, with ok set
// only after an echo over a data channel whose selected candidate pairs are relay on both ends.
//
// Usage: node example_page.mjs --url 'http://127.0.0.1:PORT/index.html?api=...&key=...'
//            [--chromium /usr/bin/chromium] [--timeout 40]
// The URL carries the example's API key: a throw-away key made by the test for its own server.
// Exit status: 0 PASS, 1 FAIL, 2 usage.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';

const opts = { url: null, chromium: process.env.CHROMIUM_BIN || '/usr/bin/chromium', timeoutSec: 40 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const need = () => { if (i + 1 >= argv.length) { console.error(`${argv[i]} needs a value`); process.exit(2); } return argv[++i]; };
  switch (argv[i]) {
    case '--url': opts.url = need(); break;
    case '--chromium': opts.chromium = need(); break;
    case '--timeout': opts.timeoutSec = Number(need()); break;
    default: console.error(`unknown argument ${argv[i]}`); process.exit(2);
  }
}
if (!opts.url || !(opts.timeoutSec > 0 && opts.timeoutSec <= 600)) {
  console.error('usage: node example_page.mjs --url URL [--chromium PATH] [--timeout SECONDS]');
  process.exit(2);
}

// Whatever happens, the process ends; playwright kills the browser it launched when node exits.
setTimeout(() => { console.log(`FAIL example_page: watchdog after ${opts.timeoutSec + 20}s`); process.exit(1); },
  (opts.timeoutSec + 20) * 1000).unref();

const { chromium } = await import('playwright-core');
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-example-chromium-'));
let context = null;
let code = 1;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: opts.chromium,
    headless: true,
    chromiumSandbox: false,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => console.log(`  page error: ${e}`));
  await page.goto(opts.url, { timeout: 10000 });
  await page.waitForFunction(() => window.ferryExample && window.ferryExample.done, null,
    { timeout: opts.timeoutSec * 1000 });
  const r = await page.evaluate(() => window.ferryExample);
  const status = await page.textContent('#status');
  const logText = await page.textContent('#log');
  console.log(logText.trimEnd().split('\n').map((l) => `  page: ${l}`).join('\n'));
  const relay = (p) => p && p.local && p.remote && p.local.type === 'relay' && p.remote.type === 'relay';
  if (r.ok && status === 'connected via relay' && relay(r.pairs?.a) && relay(r.pairs?.b) &&
      r.echo === `echo: ${r.message}`) {
    console.log(`PASS example_page: "${status}", selected pairs relay/relay ` +
      `(a ${r.pairs.a.local.address}:${r.pairs.a.local.port} <-> b ${r.pairs.b.local.address}:${r.pairs.b.local.port})`);
    code = 0;
  } else {
    console.log(`FAIL example_page: status "${status}", result ${JSON.stringify(r)}`);
  }
} catch (err) {
  console.log(`FAIL example_page: ${err && err.stack ? err.stack : err}`);
} finally {
  if (context) await Promise.race([context.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
