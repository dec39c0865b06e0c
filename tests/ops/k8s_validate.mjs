// Offline validation of Kubernetes manifests against the Kubernetes (and prometheus-operator)
// schemas that the npm packages kubernetes-models and @kubernetes-models/prometheus-operator ship.
//
// Two checks per object:
//  * types: the package's own validate() (JSON schema compiled with ajv): wrong types, missing
//    required fields, bad enum values, int32 ranges ...
//  * unknown fields: the compiled validators accept any extra key, while the API server's strict
//    field validation (kubectl apply --validate=strict) rejects them, and a typo such as
//    `terminationGracePeriod` would otherwise pass silently. The object is handed to the validator
//    wrapped in Proxies that record which keys the validator reads: it reads exactly the keys its
//    schema knows, and enumerates the keys of maps (labels, data, resources ...), so a key that is
//    neither read nor enumerated is one the schema does not have.

import { parseAllDocuments } from "yaml";

// apiVersion group -> module prefix. Core ("v1") and the built-in groups come from kubernetes-models.
const CRD_PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    throw new Error("apiVersion and kind must be strings");
  }
  const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
  const pkg = CRD_PACKAGES[group] ?? "kubernetes-models";
  let mod;
  try {
    mod = await import(`${pkg}/${apiVersion}`);
  } catch {
    throw new Error(`no schema for apiVersion ${apiVersion} (package ${pkg})`);
  }
  const cls = mod[kind];
  if (typeof cls !== "function" || typeof cls.prototype.validate !== "function") {
    throw new Error(`no schema for ${apiVersion} ${kind}`);
  }
  return cls;
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// Wraps `value` so that reads are recorded in `records` (one per object: path, keys, read keys).
function track(value, path, records) {
  if (Array.isArray(value)) return value.map((v, i) => track(v, `${path}/${i}`, records));
  if (!isPlainObject(value)) return value;
  const rec = { path, keys: Object.keys(value), read: new Set(), enumerated: false };
  records.push(rec);
  const inner = {};
  for (const k of rec.keys) inner[k] = track(value[k], `${path}/${k}`, records);
  return new Proxy(inner, {
    get(t, p, r) {
      if (typeof p === "string") rec.read.add(p);
      return Reflect.get(t, p, r);
    },
    has(t, p) {
      if (typeof p === "string") rec.read.add(p);
      return Reflect.has(t, p);
    },
    getOwnPropertyDescriptor(t, p) {
      if (typeof p === "string") rec.read.add(p);
      return Reflect.getOwnPropertyDescriptor(t, p);
    },
    ownKeys(t) {
      rec.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

// Returns a list of error strings for one parsed object (empty = valid).
export async function validateObject(obj) {
  if (!isPlainObject(obj)) return ["document is not a mapping"];
  let cls;
  try {
    cls = await modelClass(obj.apiVersion, obj.kind);
  } catch (e) {
    return [e.message];
  }
  const errors = [];
  try {
    new cls(obj).validate();
  } catch (e) {
    errors.push(`schema: ${e.message}`);
  }
  const records = [];
  const tracked = track(obj, "", records);
  try {
    cls.prototype.validate.call(tracked);
  } catch {
    // type errors are reported above; this pass only looks at which keys were read
  }
  const unknown = []; // paths, so that nothing below an unknown field is reported again
  for (const rec of records) {
    if (rec.enumerated || unknown.some((u) => rec.path.startsWith(`${u}/`))) continue;
    for (const k of rec.keys) {
      if (!rec.read.has(k)) unknown.push(`${rec.path}/${k}`);
    }
  }
  for (const u of unknown) errors.push(`unknown field ${u}`);
  return errors;
}

// Parses a (multi-document) YAML text; returns [{index, object, errors}] with YAML and schema errors.
export async function validateText(text) {
  const out = [];
  const docs = parseAllDocuments(text);
  let index = 0;
  for (const doc of docs) {
    const yamlErrors = doc.errors.map((e) => `yaml: ${e.message}`);
    const object = yamlErrors.length ? null : doc.toJS();
    if (object === null && !yamlErrors.length) continue; // an empty document (e.g. after ---)
    const errors = yamlErrors.length ? yamlErrors : await validateObject(object);
    out.push({ index: index++, object, errors });
  }
  return out;
}
