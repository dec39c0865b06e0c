// One TLS or DTLS session, sans-I/O: ciphertext goes in through feed(), plaintext comes out of
// read(); plaintext goes in through write() and the ciphertext comes out through Output, one call
// per record write (for DTLS: one call per datagram). The SSL reads from and writes to a custom
// BIO over caller memory, so nothing is copied into or buffered in a BIO: received bytes are
// consumed from the caller's buffer before feed()'s caller returns to the loop, and records
// written are handed out as OpenSSL produces them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "stun/bytes.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct bio_st BIO;
typedef union bio_addr_st BIO_ADDR;

namespace ferry::server {

class TlsSession {
 public:
  class Output {
   public:
    virtual ~Output() = default;
    // Ciphertext to send, valid during the call. For DTLS one datagram.
    virtual void on_tls_output(stun::Bytes ciphertext) = 0;
  };

  enum class Role { Server, Client };  // Client: for tests
  // nullptr when OpenSSL cannot make the SSL (out of memory).
  static std::unique_ptr<TlsSession> create(SSL_CTX* ctx, Output* output, Role role = Role::Server);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  void set_output(Output* output) { output_ = output; }

  // DTLS servers only: handles the first datagram of an unknown client without keeping state
  // (DTLSv1_listen). Answered: a HelloVerifyRequest went out, or the datagram was dropped.
  // Accepted: the ClientHello carried a valid cookie; this session now owns the handshake and
  // read() continues it. Failed: the SSL is unusable; make a new one.
  enum class Listen { Answered, Accepted, Failed };
  Listen listen(stun::Bytes datagram);

  // Makes `ciphertext` the input of the following read() calls. It must stay valid until read()
  // reports NeedMore (all of it consumed), Closed or Failed.
  void feed(stun::Bytes ciphertext);

  enum class Status {
    Data,      // `bytes` of plaintext were written to the buffer
    NeedMore,  // all input consumed (handshake progress may have produced output)
    Closed,    // the peer sent close_notify
    Failed,    // a fatal TLS error (bad version, bad record, garbage): close the transport
  };
  struct ReadResult {
    Status status;
    size_t bytes = 0;
  };
  // Decrypts into `out` (up to `capacity` bytes), advancing the handshake as needed.
  ReadResult read(uint8_t* out, size_t capacity);

  // Encrypts `plaintext` as one or more records, all handed to Output before returning. False
  // when the handshake is not done, the session failed or the record could not be written (for
  // DTLS: larger than a record).
  bool write(stun::Bytes plaintext);

  // Sends close_notify when the handshake completed and nothing failed. Does nothing when called
  // from inside another call of this session (e.g. from Output).
  void close_notify();

  // DTLS: retransmits the last flight when its timer expired (RFC 6347 §4.2.4). False: fatal.
  bool on_timer();

  bool handshake_done() const;
  bool failed() const { return failed_; }
  std::string_view alpn() const;     // the protocol ALPN selected, "" for none
  std::string_view version() const;  // "TLSv1.3", "DTLSv1.2", ...
  SSL* ssl() { return ssl_; }

  // The BIO callbacks' view of the session.
  struct Io;

 private:
  TlsSession() = default;
  ReadResult fail();

  SSL* ssl_ = nullptr;
  BIO* bio_ = nullptr;
  BIO_ADDR* listen_addr_ = nullptr;
  Output* output_ = nullptr;
  const uint8_t* in_ = nullptr;
  size_t in_len_ = 0;
  bool busy_ = false;  // inside an OpenSSL call of this session
  bool failed_ = false;
};

}  // namespace ferry::server
