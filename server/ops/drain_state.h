// One drain, two reasons: SIGTERM (the process is going away) and the operator's `ferryctl drain`
// (the node registry's desired_state). Either makes the workers refuse new Allocates; only an
// undrain with no SIGTERM behind it lets them take allocations again. Pure bookkeeping of what
// the workers and /readyz should be told; Operations applies it.
#pragma once

#include <optional>

#include "stun/transport_address.h"

namespace ferry::server {

struct DrainTarget {
  bool draining = false;
  std::optional<stun::TransportAddress> alternate;  // ALTERNATE-SERVER; none: 508
  friend bool operator==(const DrainTarget&, const DrainTarget&) = default;
};

class DrainState {
 public:
  // `configured`: drain.alternate_server, which wins over the fleet's choice when set.
  explicit DrainState(std::optional<stun::TransportAddress> configured) : configured_(configured) {}

  void set_sigterm() { sigterm_ = true; }
  void set_fleet(bool drain) { fleet_ = drain; }
  // The least loaded other live node (choose_alternate), refreshed with each heartbeat.
  void set_fleet_alternate(std::optional<stun::TransportAddress> a) { fleet_alternate_ = a; }

  bool sigterm() const { return sigterm_; }
  bool fleet() const { return fleet_; }
  bool draining() const { return sigterm_ || fleet_; }
  DrainTarget target() const {
    if (!draining()) return {};
    return {true, configured_ ? configured_ : fleet_alternate_};
  }

 private:
  std::optional<stun::TransportAddress> configured_;
  std::optional<stun::TransportAddress> fleet_alternate_;
  bool sigterm_ = false;
  bool fleet_ = false;
};

}  // namespace ferry::server
