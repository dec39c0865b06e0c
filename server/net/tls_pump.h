// The read side of a TLS or DTLS session over any transport: ciphertext in, plaintext out to the
// stream's framing, the session's own records (handshake, alerts) out through its Output as they
// are produced. TLS over TCP and DTLS over UDP differ only in where the plaintext goes.
#pragma once

#include <cstddef>

#include <spdlog/spdlog.h>

#include "server/net/connection_limits.h"
#include "server/tls/tls_session.h"
#include "stun/bytes.h"
#include "turn/five_tuple.h"

namespace ferry::server {

enum class TlsPumpEnd {
  NeedMore,  // all of the ciphertext consumed; wait for the next read
  Stopped,   // the caller's transport closed meanwhile (stopped() said so)
  Closed,    // the peer sent close_notify, answered with ours: close the transport
  Failed,    // a failed handshake or a bad record (counted in tls_failures): close the transport
};

// Feeds `ciphertext` to `tls` and decrypts until it is consumed: each piece of plaintext is read
// into room() (a stun::MutableBytes) and handed to deliver(size_t bytes). stopped() is asked
// before every read. On Failed, OpenSSL has sent its alert already (RFC 8446 §6.2).
template <class Room, class Deliver, class Stopped>
TlsPumpEnd pump_tls(TlsSession& tls, stun::Bytes ciphertext, Room&& room, Deliver&& deliver, Stopped&& stopped,
                    ConnectionStats& stats, [[maybe_unused]] const turn::FiveTuple& peer) {
  tls.feed(ciphertext);
  while (!stopped()) {
    const stun::MutableBytes out = room();
    auto r = tls.read(out.data(), out.size());
    switch (r.status) {
      case TlsSession::Status::Data: deliver(r.bytes); break;
      case TlsSession::Status::NeedMore: return TlsPumpEnd::NeedMore;
      case TlsSession::Status::Closed:
        tls.close_notify();  // answer the client's close_notify (RFC 8446 §6.1)
        return TlsPumpEnd::Closed;
      case TlsSession::Status::Failed:
        // Wrong version, garbage, a bad record or a failed handshake.
        SPDLOG_DEBUG("{} {}: handshake or record failure", turn::to_string(peer.transport), peer.client.to_string());
        stats.tls_failures.add();
        return TlsPumpEnd::Failed;
    }
  }
  return TlsPumpEnd::Stopped;
}

}  // namespace ferry::server
