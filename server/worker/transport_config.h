// From the configuration to the workers' transport settings: connection limits and timeouts, and
// the TLS certificates when a tls or dtls listener exists (loaded here, so a missing or broken
// file stops the start with a message naming the key, and watched for changes afterwards).
#pragma once

#include <optional>
#include <string>

#include "server/config/config.h"
#include "server/tls/tls_context.h"
#include "server/worker/worker.h"

namespace ferry::server {

bool needs_tls(const Config& config);
TlsOptions tls_options(const Config& config);
ConnectionLimits connection_limits(const Config& config);

// Sets settings.tcp and, when needed, settings.tls. An error is ready to print.
std::optional<std::string> configure_transports(const Config& config, WorkerSettings& settings);

}  // namespace ferry::server
