// STUN/TURN over DTLS 1.2 (RFC 8656 §3.1, RFC 6347), sans-I/O: datagrams in, datagrams out.
//
// A datagram from an address with a session goes to that session. One from an unknown address
// goes through DTLSv1_listen on a single reusable SSL: without a valid cookie it is answered with
// a HelloVerifyRequest (or dropped) and nothing is kept, so spoofed sources cost no state; with
// one, that SSL becomes the client's session (if the connection limits admit it) and a fresh SSL
// takes its place. Each decrypted record is one STUN message or ChannelData frame for the core;
// frames to the client are encrypted into one record and datagram each.
//
// Sessions end on close_notify or a fatal alert, after the handshake timeout when no frame
// arrived, and after the idle timeout when they hold no allocation; the host hears on_closed()
// so the core drops the allocation with its session. A new ClientHello from the address of an
// established session replaces that session (RFC 6347 §4.2.8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "server/net/connection_limits.h"
#include "server/tls/dtls_cookie.h"
#include "server/net/stream_handler.h"
#include "server/net/stream_timeouts.h"
#include "server/tls/tls_context.h"
#include "server/tls/tls_session.h"
#include "stun/bytes.h"
#include "turn/five_tuple.h"

namespace ferry::server {

class DtlsServer {
 public:
  class Host : public StreamHandler {
   public:
    // One DTLS datagram to the client `to.client` from the listener `to.server`.
    virtual void send_datagram(const turn::FiveTuple& to, stun::Bytes datagram) = 0;
  };

  // `clock` stamps the cookies (the deadlines use the now_ms passed in); it must outlive the server.
  DtlsServer(Host& host, const Clock& clock, std::shared_ptr<TlsCertificates> tls, const ConnectionLimits& limits,
             ConnectionLimiter& limiter, ConnectionStats& stats);
  ~DtlsServer();  // sessions are dropped without alerts or callbacks
  DtlsServer(const DtlsServer&) = delete;
  DtlsServer& operator=(const DtlsServer&) = delete;

  // A datagram from `from` (transport Dtls); `now_ms` is the loop's clock.
  void on_datagram(const turn::FiveTuple& from, stun::Bytes datagram, uint64_t now_ms);
  // Encrypts one frame to an established session. False: no such session, or not sent.
  bool send(const turn::FiveTuple& to, stun::Bytes frame);
  // Handshake retransmissions and the handshake and idle timeouts; call a few times a second.
  void tick(uint64_t now_ms);
  // Sends close_notify to every session and drops them all, without on_closed().
  void close_all();

  size_t session_count() const { return sessions_.size(); }
  bool has_session(const turn::FiveTuple& client) const { return sessions_.count(client) != 0; }
  uint64_t dropped_frames() const { return dropped_frames_; }

 private:
  struct Session;
  struct ListenOutput final : TlsSession::Output {
    DtlsServer* owner = nullptr;
    void on_tls_output(stun::Bytes datagram) override;
  };

  void admit(const turn::FiveTuple& from, stun::Bytes datagram, uint64_t now_ms);
  void process(Session& s, stun::Bytes datagram, uint64_t now_ms);
  // Ends a session: optionally close_notify to the client, on_closed() to the host when `notify`.
  void end(Session& s, bool notify, bool alert);
  void reap();  // frees the ended sessions

  Host& host_;
  TlsContextCache tls_;
  ConnectionLimits limits_;
  ConnectionLimiter& limiter_;
  ConnectionStats& stats_;
  DtlsCookieKey cookie_key_;
  std::unordered_map<turn::FiveTuple, std::unique_ptr<Session>, turn::FiveTupleHash> sessions_;
  std::vector<std::unique_ptr<Session>> ended_;  // freed once no call is using them any more

  // The SSL that answers unknown clients, the context it was made from, and who it answers.
  std::unique_ptr<TlsSession> listener_;
  const void* listener_ctx_ = nullptr;
  ListenOutput listen_output_;
  DtlsCookieSubject listen_subject_;
  turn::FiveTuple listen_tuple_;

  static constexpr size_t kPlainBuffer = 16384 + 2048;  // a record's plaintext at most
  std::unique_ptr<uint8_t[]> plain_;
  uint64_t dropped_frames_ = 0;
};

}  // namespace ferry::server
