// The operations HTTP API as plain request -> response functions, so it is testable without
// sockets; server/http_server.* puts it on cpp-httplib. Routes:
//   GET /metrics          Prometheus text format
//   GET /healthz          200 "ok" while every worker loop ticks, else 503 and why
//   GET /readyz           200 "ready" when listeners are bound, the database (if any) reachable
//                         and not draining, else 503 and why
//   GET /v1/ice-servers   Authorization: Bearer <API key>; ?ttl=SECONDS, ?user=ID; answers
//                         {"iceServers":[...]} with a fresh TURN REST credential. 401 for a
//                         missing or unknown key, 429 over the key's rate, 503 without a shared
//                         secret or URLs or when the key database is down, 400 for a bad ?ttl=
//                         or ?user=. With a fleet, one iceServers entry per live active node
//                         (up to http.ice_nodes, least loaded first), all with one credential.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>

#include "server/ops/api_keys.h"
#include "server/ops/health.h"
#include "base/clock.h"

namespace ferry::server {

struct OpsRequest {
  std::string method = "GET";
  std::string path;
  std::map<std::string, std::string> query;  // the first value of each parameter
  std::string authorization;                 // the Authorization header, "" when absent
};

struct OpsResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct IceSettings {
  std::vector<std::string> urls;            // configured or derived
  std::vector<std::string> shared_secrets;  // the first one signs; none: 503
  uint32_t credential_ttl = 3600;
  uint32_t max_credential_ttl = 86400;
  uint32_t max_nodes = 3;  // with a fleet (set_fleet): at most this many nodes' URLs
};

class OpsApi {
 public:
  // `metrics` may be null (404 on /metrics). Everything referenced outlives the OpsApi.
  OpsApi(const prometheus::Collectable* metrics, const Health& health, ApiKeyRing& keys, IceSettings ice,
         const Clock& clock);

  // Thread-safe: cpp-httplib calls it from several threads.
  OpsResponse handle(const OpsRequest& request) const;
  // Configuration reload.
  void set_ice(IceSettings ice);
  // The URLs of the fleet's live active nodes, least loaded first (from the node registry, each
  // heartbeat). Non-empty: /v1/ice-servers lists the first max_nodes of them, one iceServers
  // entry each, instead of this node's own URLs; empty (no database, or it is unreachable, or no
  // node is active): this node's own, as without a fleet.
  void set_fleet(std::vector<std::vector<std::string>> node_urls);

 private:
  OpsResponse ice_servers(const OpsRequest& request) const;

  const prometheus::Collectable* metrics_;
  const Health& health_;
  ApiKeyRing& keys_;
  const Clock& clock_;
  mutable std::mutex ice_mutex_;
  IceSettings ice_;                              // guarded by ice_mutex_
  std::vector<std::vector<std::string>> fleet_;  // guarded by ice_mutex_
};

}  // namespace ferry::server
