// Where the client transports with per-client state (TCP and TLS connections, DTLS sessions)
// deliver what they receive. The Worker implements it and hands frames to its ServerCore.
#pragma once

#include "stun/bytes.h"
#include "turn/five_tuple.h"

namespace ferry::server {

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // One complete frame (a STUN message or ChannelData); `frame` is valid only during the call.
  virtual void on_frame(const turn::FiveTuple& from, stun::Bytes frame) = 0;
  // The connection or session is gone (peer closed, error, garbage, timeout). Not called for
  // ones closed through close_connection() or close().
  virtual void on_closed(const turn::FiveTuple& client) = 0;
  // A connection holding an allocation lives as long as the allocation, however quiet.
  virtual bool holds_allocation(const turn::FiveTuple& /*client*/) const { return false; }
};

}  // namespace ferry::server
