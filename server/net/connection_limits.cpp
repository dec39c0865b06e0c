#include "server/net/connection_limits.h"

namespace ferry::server {

bool ConnectionLimiter::would_admit(const stun::TransportAddress& client) const {
  if (max_total_ != 0 && total_ >= max_total_) return false;
  return max_per_ip_ == 0 || count(client) < max_per_ip_;
}

bool ConnectionLimiter::try_acquire(const stun::TransportAddress& client) {
  if (!would_admit(client)) return false;
  ++per_ip_[key(client)];
  ++total_;
  return true;
}

void ConnectionLimiter::release(const stun::TransportAddress& client) {
  auto it = per_ip_.find(key(client));
  if (it == per_ip_.end()) return;
  if (--it->second == 0) per_ip_.erase(it);
  --total_;
}

size_t ConnectionLimiter::count(const stun::TransportAddress& client) const {
  auto it = per_ip_.find(key(client));
  return it == per_ip_.end() ? 0 : it->second;
}

}  // namespace ferry::server
