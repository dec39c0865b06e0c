// Where the client transports with per-client state (TCP and TLS connections, DTLS sessions)
// deliver what they receive. The Worker implements it and hands frames to its ServerCore.
#pragma once

#include <cstdint>

#include "stun/bytes.h"
#include "turn/five_tuple.h"

namespace ferry::server {

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // One complete frame (a STUN message or ChannelData); `frame` is valid only during the call.
  virtual void on_frame(const turn::FiveTuple& from, stun::Bytes frame) = 0;
  // Around the frames of one read of a TCP/TLS connection: `buffer` holds them all and stays put
  // until frames_end(), so what they relay may be sent together then.
  virtual void frames_begin(stun::Bytes /*buffer*/) {}
  virtual void frames_end() {}
  // The connection or session is gone (peer closed, error, garbage, timeout). Not called for
  // ones closed through close_connection() or close().
  virtual void on_closed(const turn::FiveTuple& client) = 0;
  // A connection holding an allocation lives as long as the allocation, however quiet.
  virtual bool holds_allocation(const turn::FiveTuple& /*client*/) const { return false; }
};

// RFC 6062 client data connections: after its ConnectionBind a TCP/TLS connection carries the
// bytes of one peer data connection as they are, named by the CONNECTION-ID it was bound to.
class RawStreamHandler {
 public:
  virtual ~RawStreamHandler() = default;
  // Bytes from the client, valid only during the call.
  virtual void on_raw_bytes(uint32_t id, stun::Bytes bytes) = 0;
  // The connection's write queue fell to half the write budget or less (see TcpListener::write_raw).
  virtual void on_raw_drained(uint32_t id) = 0;
  // The client closed it, or it failed. Not called for ones closed through close_connection().
  virtual void on_raw_closed(uint32_t id) = 0;
};

}  // namespace ferry::server
