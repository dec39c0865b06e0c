// Two RTCPeerConnections in one page, relay candidates only, credentials from ferry's
// /v1/ice-servers (a TURN REST credential minted for an API key). The result is shown in
// #status and kept in window.ferryExample for automated checks.
'use strict';

const statusEl = document.getElementById('status');
const logEl = document.getElementById('log');
const log = (line) => { logEl.textContent += `${line}\n`; };
window.ferryExample = { done: false, ok: false };

function finish(ok, text, extra = {}) {
  statusEl.textContent = text;
  statusEl.className = ok ? 'ok' : 'failed';
  Object.assign(window.ferryExample, { done: true, ok, text }, extra);
}

// The selected candidate pair of a connection, with the types of both ends.
async function selectedPair(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const describe = (c) => c && { type: c.candidateType, address: c.address, port: c.port };
  return { local: describe(stats.get(pair.localCandidateId)), remote: describe(stats.get(pair.remoteCandidateId)) };
}

function withTimeout(promise, ms, what) {
  return Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms))]);
}

async function main() {
  const params = new URLSearchParams(location.search);
  const api = params.get('api');
  const key = params.get('key');
  if (!api || !key) throw new Error('add ?api=http://HOST:PORT&key=API_KEY to the address');

  // The API key travels in a header; ferry answers the CORS preflight for it.
  const response = await fetch(new URL('/v1/ice-servers', api), { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) throw new Error(`/v1/ice-servers: HTTP ${response.status} ${await response.text()}`);
  const { iceServers, ttl } = await response.json();
  log(`ice servers (credential valid ${ttl} s): ${iceServers.map((s) => [].concat(s.urls).join(' ')).join(' ')}`);

  const config = { iceServers, iceTransportPolicy: 'relay' };
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  // In a real application the candidates and descriptions travel over a signalling server.
  a.onicecandidate = (e) => { if (e.candidate) { log(`a: ${e.candidate.candidate}`); b.addIceCandidate(e.candidate); } };
  b.onicecandidate = (e) => { if (e.candidate) { log(`b: ${e.candidate.candidate}`); a.addIceCandidate(e.candidate); } };
  b.ondatachannel = (e) => { e.channel.onmessage = (m) => e.channel.send(`echo: ${m.data}`); };

  const channel = a.createDataChannel('ferry-example');
  const opened = new Promise((resolve) => { channel.onopen = resolve; });
  const echoed = new Promise((resolve) => { channel.onmessage = (m) => resolve(m.data); });

  const offer = await a.createOffer();
  await a.setLocalDescription(offer);
  await b.setRemoteDescription(offer);
  const answer = await b.createAnswer();
  await b.setLocalDescription(answer);
  await a.setRemoteDescription(answer);

  await withTimeout(opened, 20000, 'the data channel to open');
  const message = `hello from ${location.host} at ${new Date().toISOString()}`;
  channel.send(message);
  const echo = await withTimeout(echoed, 10000, 'the echo');
  log(`sent "${message}", got back "${echo}"`);

  const pairs = { a: await selectedPair(a), b: await selectedPair(b) };
  const relayed = ['a', 'b'].every((n) => pairs[n] && pairs[n].local.type === 'relay' && pairs[n].remote.type === 'relay');
  for (const n of ['a', 'b']) log(`selected pair ${n}: ${JSON.stringify(pairs[n])}`);
  if (!relayed) throw new Error('the selected candidate pairs are not relay/relay');
  finish(true, 'connected via relay', { pairs, echo, message });
}

main().catch((err) => { log(String(err)); finish(false, `failed: ${err.message || err}`); });
