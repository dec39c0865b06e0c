// Everything operators talk to besides TURN: the HTTP listener (metrics, health, readiness,
// ICE servers) and the SIGTERM drain. Built by main() once the workers are bound.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/ops/api_keys.h"
#include "server/config/config.h"
#include "server/ops/health.h"
#include "server/ops/http_server.h"
#include "server/ops/metrics.h"
#include "server/ops/ops_api.h"
#include "server/ops/pg_api_keys.h"
#include "server/worker/worker_pool.h"
#include "base/clock.h"

namespace ferry::server {

// What /v1/ice-servers hands out under `config`, with the listeners as bound.
IceSettings ice_settings(const Config& config, const std::vector<ListenerConfig>& bound);

class Operations {
 public:
  // `pool` is started and outlives this object; stop() must run before the pool stops.
  Operations(const Config& config, WorkerPool& pool);
  ~Operations();

  Health& health() { return health_; }
  ApiKeyRing& api_keys() { return keys_; }
  OpsApi& api() { return api_; }

  // Starts the HTTP listener when http.address is set. Error: "http 127.0.0.1:9641: ...".
  std::optional<std::string> start();
  void stop();

  // Runs the signal loop on the calling thread until the process should exit: SIGINT, or a
  // SIGTERM when drain.timeout is 0, end it at once; otherwise SIGTERM starts a drain (readiness
  // false, new Allocates refused or sent to drain.alternate_server) that ends when no allocation
  // is left or drain.timeout has passed, or at once on a second SIGTERM or a SIGINT.
  // `on_sighup`, when set, runs on this thread for every SIGHUP (configuration reload).
  void wait_for_shutdown(std::function<void()> on_sighup = {});

 private:
  const Config& config_;
  WorkerPool& pool_;
  SteadyClock clock_;
  Health health_;
  ApiKeyRing keys_;
  std::unique_ptr<PgApiKeys> db_keys_;  // with a database: keys from `ferryctl apikey`
  std::unique_ptr<MetricsCollector> metrics_;
  OpsApi api_;
  HttpServer http_;
};

}  // namespace ferry::server
