#!/usr/bin/env node
// Relay a WebRTC data channel between two in-page RTCPeerConnections through a TURN server,
// using Debian's headless chromium driven by playwright-core.
//
// Both peer connections use iceTransportPolicy 'relay', so the only way the data channel can
// open is through TURN allocations on the server under test.  After an echo round trip the
// selected candidate pair of each side is read from getStats() and both its local and remote
// candidates must be of type 'relay'.
//
// Usage:
//   FERRY_TEST_CREDENTIAL=secret node relay_datachannel.mjs \
//       --turn-url 'turn:127.0.0.1:23478?transport=udp' --username alice \
//       [--timeout 30] [--chromium /usr/bin/chromium] \
//       [--expect-relay-address 127.0.0.1] [--expect-relay-ports 24000-24999] [--verbose]
//       [--ignore-certificate-errors] [--expect-relay-protocol udp|tcp|tls]
//
// For a turns: URL against a test server with a self-signed certificate, pass
// --ignore-certificate-errors: chromium is then started with the flag of the same name, which
// its TURN/TLS sockets honour like every other TLS connection.
//
// The TURN password is read from the environment variable FERRY_TEST_CREDENTIAL (or the one
// named by --credential-env) and is never accepted on the command line.
//
// Exit status: 0 = PASS, 1 = FAIL (the test ran and an assertion failed), 2 = usage / setup error.

import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';

const USAGE = `usage: FERRY_TEST_CREDENTIAL=... node relay_datachannel.mjs --turn-url URL [--username NAME]
       [--credential-env VAR] [--timeout SECONDS] [--chromium PATH]
       [--expect-relay-address IP] [--expect-relay-ports MIN-MAX] [--verbose]
       [--ignore-certificate-errors] [--expect-relay-protocol udp|tcp|tls]`;

function die(msg, code = 2) {
  console.error(`relay_datachannel: ${msg}`);
  console.error(USAGE);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = {
    turnUrl: null,
    username: 'alice',
    credentialEnv: 'FERRY_TEST_CREDENTIAL',
    timeoutSec: 30,
    chromium: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    expectRelayAddress: null,
    expectRelayPorts: null,
    verbose: false,
    ignoreCertificateErrors: false,
    expectRelayProtocol: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inlineValue = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = () => {
      if (inlineValue !== undefined) return inlineValue;
      if (i + 1 >= argv.length) die(`${name} needs a value`);
      return argv[++i];
    };
    switch (name) {
      case '--turn-url': opts.turnUrl = value(); break;
      case '--username': opts.username = value(); break;
      case '--credential-env': opts.credentialEnv = value(); break;
      case '--timeout': opts.timeoutSec = Number(value()); break;
      case '--chromium': opts.chromium = value(); break;
      case '--expect-relay-address': opts.expectRelayAddress = value(); break;
      case '--expect-relay-ports': {
        const m = /^(\d+)-(\d+)$/.exec(value());
        if (!m) die('--expect-relay-ports wants MIN-MAX');
        opts.expectRelayPorts = [Number(m[1]), Number(m[2])];
        break;
      }
      case '--verbose': case '-v': opts.verbose = true; break;
      case '--ignore-certificate-errors': opts.ignoreCertificateErrors = true; break;
      case '--expect-relay-protocol': opts.expectRelayProtocol = value(); break;
      case '--credential':
        die('secrets are not accepted on the command line; put the TURN password in the ' +
            'FERRY_TEST_CREDENTIAL environment variable (or the one named by --credential-env)');
        break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: die(`unknown argument ${a}`);
    }
  }
  if (!opts.turnUrl) die('--turn-url is required');
  if (!/^turns?:/.test(opts.turnUrl)) die(`--turn-url must be a turn: or turns: URL, got ${opts.turnUrl}`);
  if (!Number.isFinite(opts.timeoutSec) || opts.timeoutSec <= 0 || opts.timeoutSec > 600) {
    die('--timeout must be between 0 and 600 seconds');
  }
  opts.credential = process.env[opts.credentialEnv];
  if (opts.credential === undefined) die(`environment variable ${opts.credentialEnv} is not set`);
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const t0 = Date.now();
const vlog = (...a) => { if (opts.verbose) console.error(`[${((Date.now() - t0) / 1000).toFixed(2)}s]`, ...a); };

// ---------------------------------------------------------------------------------------------
// Resources to release on every exit path.
let server = null;
let context = null;
let userDataDir = null;
let finished = false;

async function cleanup() {
  if (context) {
    const c = context; context = null;
    // close() can hang if the browser is wedged; bound it.  If it does, process.exit() below
    // still ends the run and playwright kills the browser process it launched.
    await Promise.race([c.close().catch(() => {}), sleep(5000)]);
  }
  if (server) { const s = server; server = null; await new Promise((r) => s.close(() => r())); }
  if (userDataDir) {
    try { fs.rmSync(userDataDir, { recursive: true, force: true }); } catch { /* best effort */ }
    userDataDir = null;
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function finish(code, lines) {
  if (finished) return;
  finished = true;
  for (const l of lines) console.log(l);
  await cleanup();
  process.exit(code);
}

// Hard watchdog: whatever happens, the process ends (playwright kills the browser it launched
// when node exits).  Leaves headroom above the in-page timeout for launch and teardown.
const watchdog = setTimeout(() => {
  console.log(`FAIL relay_datachannel: hard watchdog fired after ${opts.timeoutSec + 20}s`);
  if (userDataDir) { try { fs.rmSync(userDataDir, { recursive: true, force: true }); } catch { /* */ } }
  process.exit(1);
}, (opts.timeoutSec + 20) * 1000);
watchdog.unref();

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { finish(1, [`FAIL relay_datachannel: interrupted by ${sig}`]); });
}

// ---------------------------------------------------------------------------------------------
// The page: a trivial document served from 127.0.0.1 (a secure-enough origin for WebRTC).
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>ferry relay test</title></head>
<body><p id="status">ferry TURN relay data channel test</p></body></html>`;

function startServer() {
  return new Promise((resolve, reject) => {
    const s = http.createServer((req, res) => {
      if (req.url === '/' || req.url === '/index.html') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(PAGE);
      } else if (req.url === '/favicon.ico') {
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
      }
    });
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

// ---------------------------------------------------------------------------------------------
// Runs inside the page.  Must be self-contained (it is serialised by playwright).
async function inPageTest({ iceServers, timeoutMs, message }) {
  const started = performance.now();
  const events = [];
  const note = (what) => events.push(`${((performance.now() - started) / 1000).toFixed(2)}s ${what}`);
  const candidates = { a: [], b: [] };
  const candidateErrors = [];
  const cfg = { iceServers, iceTransportPolicy: 'relay' };
  const a = new RTCPeerConnection(cfg);
  const b = new RTCPeerConnection(cfg);

  const deadline = (p, what) => {
    const left = Math.max(0, timeoutMs - (performance.now() - started));
    let timer;
    return Promise.race([
      p,
      new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), left); }),
    ]).finally(() => clearTimeout(timer));
  };

  // Fail fast when a side finishes gathering without any (relay) candidate, e.g. on a 401.
  let noCandidates;
  const gatheringFailed = new Promise((_, rej) => { noCandidates = rej; });
  gatheringFailed.catch(() => {});
  const wire = (from, to, name) => {
    from.onicecandidate = (e) => {
      if (!e.candidate) {
        note(`${name}: end of candidates`);
        if (candidates[name].length === 0) {
          noCandidates(new Error(`pc ${name} gathered no relay candidate (TURN allocation failed?)`));
        }
        return;
      }
      candidates[name].push(e.candidate.candidate);
      note(`${name}: candidate ${e.candidate.candidate}`);
      to.addIceCandidate(e.candidate).catch((err) => note(`${name}: addIceCandidate failed: ${err}`));
    };
    from.onicecandidateerror = (e) => {
      candidateErrors.push({ pc: name, url: e.url, errorCode: e.errorCode, errorText: e.errorText, address: e.address, port: e.port });
      note(`${name}: icecandidateerror ${e.errorCode} ${e.errorText} (${e.url})`);
    };
    from.oniceconnectionstatechange = () => note(`${name}: ice ${from.iceConnectionState}`);
    from.onconnectionstatechange = () => note(`${name}: connection ${from.connectionState}`);
  };
  wire(a, b, 'a');
  wire(b, a, 'b');

  b.ondatachannel = (e) => {
    const ch = e.channel;
    note(`b: datachannel '${ch.label}'`);
    ch.onmessage = (m) => { note(`b: got '${m.data}', echoing`); ch.send(`echo:${m.data}`); };
  };

  const dc = a.createDataChannel('ferry', { ordered: true });
  const opened = new Promise((res) => { dc.onopen = () => { note('a: datachannel open'); res(); }; });
  const echoed = new Promise((res) => { dc.onmessage = (m) => { note(`a: got '${m.data}'`); res(m.data); }; });

  const result = { ok: false, error: null, echo: null, events, candidates, candidateErrors, pairs: {} };

  const selectedPair = async (pc) => {
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId && byId.has(s.selectedCandidatePairId)) {
        pair = byId.get(s.selectedCandidatePairId);
      }
    });
    if (!pair) {
      // Fallback for browsers without transport.selectedCandidatePairId.
      stats.forEach((s) => {
        if (!pair && s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) pair = s;
      });
    }
    if (!pair) return null;
    const pick = (c) => c && {
      candidateType: c.candidateType, address: c.address ?? c.ip, port: c.port, protocol: c.protocol,
      relayProtocol: c.relayProtocol, url: c.url,
    };
    return {
      state: pair.state, nominated: pair.nominated,
      bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived,
      currentRoundTripTime: pair.currentRoundTripTime,
      local: pick(byId.get(pair.localCandidateId)),
      remote: pick(byId.get(pair.remoteCandidateId)),
    };
  };

  try {
    const offer = await a.createOffer();
    await a.setLocalDescription(offer);
    await b.setRemoteDescription(offer);
    const answer = await b.createAnswer();
    await b.setLocalDescription(answer);
    await a.setRemoteDescription(answer);
    note('offer/answer exchanged');
    await deadline(Promise.race([opened, gatheringFailed]), 'the data channel to open');
    dc.send(message);
    result.echo = await deadline(echoed, 'the echo');
    result.pairs.a = await selectedPair(a);
    result.pairs.b = await selectedPair(b);
    result.ok = true;
  } catch (err) {
    result.error = String(err && err.message ? err.message : err);
    try { result.pairs.a = await selectedPair(a); result.pairs.b = await selectedPair(b); } catch { /* */ }
  } finally {
    result.states = {
      a: { ice: a.iceConnectionState, connection: a.connectionState, gathering: a.iceGatheringState },
      b: { ice: b.iceConnectionState, connection: b.connectionState, gathering: b.iceGatheringState },
    };
    a.close();
    b.close();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
function describePair(name, p) {
  if (!p) return `  ${name}: no selected candidate pair`;
  const c = (x) => (x ? `${x.candidateType} ${x.address}:${x.port}/${x.protocol}` +
    (x.relayProtocol ? ` (relayProtocol ${x.relayProtocol})` : '') : 'missing');
  return `  ${name}: local=${c(p.local)} remote=${c(p.remote)} state=${p.state} ` +
    `bytesSent=${p.bytesSent} bytesReceived=${p.bytesReceived}`;
}

function checkResult(r) {
  const problems = [];
  if (!r.ok) problems.push(r.error || 'in-page test failed');
  if (r.ok && r.echo !== `echo:${MESSAGE}`) problems.push(`unexpected echo ${JSON.stringify(r.echo)}`);
  for (const name of ['a', 'b']) {
    const p = r.pairs[name];
    if (!p) { if (r.ok) problems.push(`pc ${name}: no selected candidate pair in getStats()`); continue; }
    for (const side of ['local', 'remote']) {
      const c = p[side];
      if (!c) { problems.push(`pc ${name}: ${side} candidate missing from getStats()`); continue; }
      if (c.candidateType !== 'relay') problems.push(`pc ${name}: ${side} candidate type is ${c.candidateType}, want relay`);
      if (opts.expectRelayAddress && c.address !== opts.expectRelayAddress) {
        problems.push(`pc ${name}: ${side} relay address ${c.address}, want ${opts.expectRelayAddress}`);
      }
      // relayProtocol: how this side reached the TURN server (its own, local candidate only).
      if (side === 'local' && opts.expectRelayProtocol && c.relayProtocol !== opts.expectRelayProtocol) {
        problems.push(`pc ${name}: relayProtocol ${c.relayProtocol}, want ${opts.expectRelayProtocol}`);
      }
      if (opts.expectRelayPorts) {
        const [lo, hi] = opts.expectRelayPorts;
        if (!(c.port >= lo && c.port <= hi)) problems.push(`pc ${name}: ${side} relay port ${c.port} outside ${lo}-${hi}`);
      }
    }
  }
  return problems;
}

const MESSAGE = `hello through TURN ${process.pid}-${Date.now()}`;

async function main() {
  let playwright;
  try {
    playwright = await import('playwright-core');
  } catch (err) {
    die(`cannot load playwright-core (run "npm ci" in tests/browser): ${err.message}`);
  }
  if (!fs.existsSync(opts.chromium)) die(`chromium not found at ${opts.chromium} (apt-get install chromium)`);

  server = await startServer();
  const pageUrl = `http://127.0.0.1:${server.address().port}/`;
  vlog(`serving ${pageUrl}`);

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-chromium-'));
  const args = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ];
  if (opts.ignoreCertificateErrors) args.push('--ignore-certificate-errors');
  vlog(`launching ${opts.chromium}`);
  context = await playwright.chromium.launchPersistentContext(userDataDir, {
    executablePath: opts.chromium,
    headless: true, // playwright adds --headless
    chromiumSandbox: false,
    args,
    timeout: Math.min(opts.timeoutSec, 30) * 1000,
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => vlog(`page console: ${m.text()}`));
  page.on('pageerror', (e) => vlog(`page error: ${e}`));
  await page.goto(pageUrl, { timeout: 10000 });

  const iceServers = [{ urls: opts.turnUrl, username: opts.username, credential: opts.credential }];
  vlog(`running in-page test against ${opts.turnUrl} as ${opts.username}`);
  const r = await page.evaluate(inPageTest, { iceServers, timeoutMs: opts.timeoutSec * 1000, message: MESSAGE });
  if (opts.verbose) for (const e of r.events) vlog(`page: ${e}`);

  const problems = checkResult(r);
  const lines = [];
  lines.push(`turn server: ${opts.turnUrl} (user ${opts.username}), chromium ${context.browser()?.version() ?? '?'}`);
  lines.push(describePair('pc a', r.pairs.a));
  lines.push(describePair('pc b', r.pairs.b));
  lines.push(`  candidates a: ${r.candidates.a.join(' | ') || '(none)'}`);
  lines.push(`  candidates b: ${r.candidates.b.join(' | ') || '(none)'}`);
  if (r.candidateErrors.length) lines.push(`  candidate errors: ${JSON.stringify(r.candidateErrors)}`);
  lines.push(`  states: ${JSON.stringify(r.states)}`);
  if (r.echo !== null) lines.push(`  echo: ${JSON.stringify(r.echo)}`);
  if (problems.length === 0) {
    const la = r.pairs.a.local, lb = r.pairs.b.local;
    lines.push(`PASS relay_datachannel: data channel echoed through TURN; selected pairs relay<->relay ` +
      `(a ${la.address}:${la.port} <-> b ${lb.address}:${lb.port}) in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    await finish(0, lines);
  } else {
    if (!opts.verbose) lines.push(...r.events.map((e) => `  event ${e}`));
    lines.push(`FAIL relay_datachannel: ${problems.join('; ')}`);
    await finish(1, lines);
  }
}

main().catch((err) => finish(1, [`FAIL relay_datachannel: ${err && err.stack ? err.stack : err}`]));
