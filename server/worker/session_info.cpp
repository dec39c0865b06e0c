#include "server/worker/session_info.h"

#include "turn/server_stats.h"

namespace ferry::server {

SessionInfo session_info_of(const turn::Allocation& a) {
  SessionInfo s;
  s.username = a.username;
  s.tuple = a.tuple;
  if (a.v4) s.relayed.push_back(a.v4->advertised);
  if (a.v6) s.relayed.push_back(a.v6->advertised);
  s.permissions = static_cast<uint32_t>(a.permissions.size());
  s.started = a.usage.started;
  s.expires = a.expires;
  s.bytes_in = a.usage.bytes[turn::idx(turn::Direction::ClientToPeer)];
  s.bytes_out = a.usage.bytes[turn::idx(turn::Direction::PeerToClient)];
  return s;
}

}  // namespace ferry::server
