#include "server/ops/ops_api.h"

#include "auth/shared_secret.h"
#include "server/ops/ice_servers.h"
#include "server/ops/metrics.h"

namespace ferry::server {

namespace {
OpsResponse text(int status, std::string body) {
  OpsResponse r;
  r.status = status;
  r.body = std::move(body);
  r.body += '\n';
  return r;
}

// Browsers call /v1/ice-servers from web pages on other origins; the API key, not a cookie,
// authorizes, so any origin may ask.
void add_cors(OpsResponse& r) {
  r.headers.emplace_back("Access-Control-Allow-Origin", "*");
  r.headers.emplace_back("Vary", "Origin");
}
}  // namespace

OpsApi::OpsApi(const prometheus::Collectable* metrics, const Health& health, ApiKeyRing& keys, IceSettings ice,
               const Clock& clock)
    : metrics_(metrics), health_(health), keys_(keys), clock_(clock), ice_(std::move(ice)) {}

void OpsApi::set_ice(IceSettings ice) {
  std::lock_guard lock(ice_mutex_);
  ice_ = std::move(ice);
}

void OpsApi::set_fleet(std::vector<std::vector<std::string>> node_urls) {
  std::lock_guard lock(ice_mutex_);
  fleet_ = std::move(node_urls);
}

OpsResponse OpsApi::handle(const OpsRequest& request) const {
  if (request.path == "/v1/ice-servers") {
    if (request.method == "OPTIONS") {  // CORS preflight: the Authorization header needs one
      OpsResponse r = text(204, "");
      r.body.clear();
      add_cors(r);
      r.headers.emplace_back("Access-Control-Allow-Methods", "GET, OPTIONS");
      r.headers.emplace_back("Access-Control-Allow-Headers", "Authorization");
      r.headers.emplace_back("Access-Control-Max-Age", "600");
      return r;
    }
    if (request.method != "GET") {
      OpsResponse r = text(405, "use GET");
      r.headers.emplace_back("Allow", "GET, OPTIONS");
      return r;
    }
    return ice_servers(request);
  }
  if (request.method != "GET" && request.method != "HEAD") {
    OpsResponse r = text(405, "use GET");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  if (request.path == "/metrics" && metrics_ != nullptr) {
    OpsResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = render_metrics(*metrics_);
    return r;
  }
  if (request.path == "/healthz") {
    if (auto p = health_.liveness_problem(steady_ms())) return text(503, *p);
    return text(200, "ok");
  }
  if (request.path == "/readyz") {
    if (auto p = health_.readiness_problem(steady_ms())) return text(503, *p);
    return text(200, "ready");
  }
  return text(404, "not found: try /metrics, /healthz, /readyz or /v1/ice-servers");
}

OpsResponse OpsApi::ice_servers(const OpsRequest& request) const {
  auto fail = [](int status, std::string why) {
    OpsResponse r = text(status, std::move(why));
    add_cors(r);
    return r;
  };
  auto token = parse_bearer(request.authorization);
  if (!token) {
    OpsResponse r = fail(401, "needs an API key: Authorization: Bearer <key>");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"ferry\"");
    return r;
  }
  const ApiKeyCheck check = keys_.check(*token);
  if (check.verdict == ApiKeyVerdict::Unknown) {
    OpsResponse r = fail(401, "unknown API key");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"ferry\", error=\"invalid_token\"");
    return r;
  }
  if (check.verdict == ApiKeyVerdict::Unavailable) {
    OpsResponse r = fail(503, "API key store unavailable");
    r.headers.emplace_back("Retry-After", "5");
    return r;
  }
  if (check.verdict == ApiKeyVerdict::RateLimited) {
    OpsResponse r = fail(429, "too many requests for this API key");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  IceSettings ice;
  std::vector<std::vector<std::string>> fleet;
  {
    std::lock_guard lock(ice_mutex_);
    ice = ice_;
    fleet = fleet_;
  }
  if (fleet.size() > ice.max_nodes) fleet.resize(ice.max_nodes);
  if (ice.shared_secrets.empty()) return fail(503, "no shared secret configured (auth.shared_secrets)");
  if (ice.urls.empty() && fleet.empty())
    return fail(503, "no ICE server URLs (set http.ice_urls, or give listeners a concrete or external address)");
  std::optional<std::string_view> ttl_text;
  if (auto it = request.query.find("ttl"); it != request.query.end()) ttl_text = it->second;
  auto ttl = parse_ttl(ttl_text, ice.credential_ttl, ice.max_credential_ttl);
  if (!ttl) return fail(400, "ttl must be a whole number of seconds, at least 1");
  std::string user = check.name;
  if (auto it = request.query.find("user"); it != request.query.end()) {
    if (!valid_user_id(it->second)) return fail(400, "user must be 1-64 letters, digits or - _ . @");
    user = it->second;
  }
  const auth::MintedCredential credential = auth::mint(ice.shared_secrets.front(), user, *ttl, clock_.unix_seconds());
  OpsResponse r;
  r.content_type = "application/json";
  r.body = fleet.empty() ? ice_servers_json(ice.urls, credential) : fleet_ice_servers_json(fleet, credential);
  r.headers.emplace_back("Cache-Control", "no-store");  // a credential: never from a cache
  add_cors(r);
  return r;
}

}  // namespace ferry::server
