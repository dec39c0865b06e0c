// The measurements. Each returns its report as JSON (main.cpp prints it as text or as is)
// or throws std::runtime_error when it cannot run at all (socket, setup).
#pragma once

#include <nlohmann/json.hpp>

#include "bench/loadgen/options.h"

namespace ferry::bench {

nlohmann::json run_relay(const Options& o);     // Mode::Relay and Mode::Raw
nlohmann::json run_binding(const Options& o);   // Mode::Binding
nlohmann::json run_allocate(const Options& o);  // Mode::Allocate
nlohmann::json run_churn(const Options& o);     // Mode::Churn

}  // namespace ferry::bench
