#include "server/tls/tls_session.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace ferry::server {

namespace {

// DTLS datagrams stay below the IPv6 minimum MTU with room for IP/UDP headers and tunnels: the
// size WebRTC stacks use. Handshake messages (the certificate chain) are fragmented to fit.
constexpr long kDtlsMtu = 1200;
// DTLS cannot split a write over records (RFC 6347 §4.1.1): larger plaintext is refused up front,
// because OpenSSL would otherwise fail the whole session.
constexpr size_t kMaxRecordPlaintext = SSL3_RT_MAX_PLAIN_LENGTH;

}  // namespace

// The BIO under every session: reads come from the span given to feed(), writes go to Output.
struct TlsSession::Io {
  static TlsSession* of(BIO* b) { return static_cast<TlsSession*>(BIO_get_data(b)); }

  static int write(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    TlsSession* s = of(b);
    if (len <= 0) return 0;
    if (s != nullptr && s->output_ != nullptr)
      s->output_->on_tls_output(stun::Bytes(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(len)));
    return len;  // the transport takes it whole or drops the connection; never "try again"
  }

  static int read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    TlsSession* s = of(b);
    if (len <= 0) return 0;
    if (s == nullptr || s->in_len_ == 0) {
      BIO_set_retry_read(b);  // non-blocking: "nothing yet", not end of file
      return -1;
    }
    const size_t n = std::min(static_cast<size_t>(len), s->in_len_);
    std::memcpy(out, s->in_, n);
    s->in_ += n;
    s->in_len_ -= n;
    return static_cast<int>(n);
  }

  static long ctrl(BIO* b, int cmd, long, void*) {
    TlsSession* s = of(b);
    switch (cmd) {
      case BIO_CTRL_FLUSH: return 1;
      case BIO_CTRL_PENDING: return s != nullptr ? static_cast<long>(s->in_len_) : 0;
      case BIO_CTRL_WPENDING: return 0;
      case BIO_CTRL_DGRAM_QUERY_MTU:
      case BIO_CTRL_DGRAM_GET_FALLBACK_MTU: return kDtlsMtu;
      default: return 0;  // peer addresses, timers, peek mode: not ours to answer
    }
  }

  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }
  static int destroy(BIO* b) {
    BIO_set_data(b, nullptr);
    return 1;
  }

  static BIO_METHOD* method() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry tls session");
      BIO_meth_set_write(m, &Io::write);
      BIO_meth_set_read(m, &Io::read);
      BIO_meth_set_ctrl(m, &Io::ctrl);
      BIO_meth_set_create(m, &Io::create);
      BIO_meth_set_destroy(m, &Io::destroy);
      return m;
    }();
    return m;
  }
};

std::unique_ptr<TlsSession> TlsSession::create(SSL_CTX* ctx, Output* output, Role role) {
  if (ctx == nullptr) return nullptr;
  std::unique_ptr<TlsSession> s(new TlsSession());
  s->output_ = output;
  s->ssl_ = SSL_new(ctx);
  if (s->ssl_ == nullptr) return nullptr;
  s->bio_ = BIO_new(Io::method());
  if (s->bio_ == nullptr) return nullptr;
  BIO_set_data(s->bio_, s.get());
  BIO_up_ref(s->bio_);  // one reference for each direction; the SSL frees both
  SSL_set0_rbio(s->ssl_, s->bio_);
  SSL_set0_wbio(s->ssl_, s->bio_);
  if (SSL_is_dtls(s->ssl_)) {
    SSL_set_options(s->ssl_, SSL_OP_NO_QUERY_MTU);
    SSL_set_mtu(s->ssl_, kDtlsMtu);
  }
  if (role == Role::Server) SSL_set_accept_state(s->ssl_);
  else SSL_set_connect_state(s->ssl_);
  return s;
}

TlsSession::~TlsSession() {
  if (bio_ != nullptr) BIO_set_data(bio_, nullptr);
  SSL_free(ssl_);
  BIO_ADDR_free(listen_addr_);
}

TlsSession::Listen TlsSession::listen(stun::Bytes datagram) {
  if (listen_addr_ == nullptr) listen_addr_ = BIO_ADDR_new();
  if (listen_addr_ == nullptr) return Listen::Failed;
  feed(datagram);
  ERR_clear_error();
  busy_ = true;
  const int r = DTLSv1_listen(ssl_, listen_addr_);
  busy_ = false;
  in_ = nullptr;  // a dropped datagram may be left unread; it is not ours past this call
  in_len_ = 0;
  ERR_clear_error();
  if (r > 0) return Listen::Accepted;
  if (r == 0) return Listen::Answered;
  failed_ = true;
  return Listen::Failed;
}

void TlsSession::feed(stun::Bytes ciphertext) {
  in_ = ciphertext.data();
  in_len_ = ciphertext.size();
}

TlsSession::ReadResult TlsSession::fail() {
  failed_ = true;
  in_ = nullptr;
  in_len_ = 0;
  ERR_clear_error();
  return {Status::Failed};
}

TlsSession::ReadResult TlsSession::read(uint8_t* out, size_t capacity) {
  if (failed_) return fail();
  ERR_clear_error();
  busy_ = true;
  const int n = SSL_read(ssl_, out, static_cast<int>(std::min<size_t>(capacity, INT_MAX)));
  busy_ = false;
  if (n > 0) return {Status::Data, static_cast<size_t>(n)};
  switch (SSL_get_error(ssl_, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      in_ = nullptr;
      in_len_ = 0;
      return {Status::NeedMore};
    case SSL_ERROR_ZERO_RETURN:
      in_ = nullptr;
      in_len_ = 0;
      return {Status::Closed};
    default: return fail();
  }
}

bool TlsSession::write(stun::Bytes plaintext) {
  if (failed_ || busy_ || plaintext.empty() || !handshake_done()) return false;
  if (SSL_is_dtls(ssl_) && plaintext.size() > kMaxRecordPlaintext) return false;
  ERR_clear_error();
  busy_ = true;
  const int n = SSL_write(ssl_, plaintext.data(), static_cast<int>(std::min<size_t>(plaintext.size(), INT_MAX)));
  busy_ = false;
  if (n > 0 && static_cast<size_t>(n) == plaintext.size()) return true;
  const int e = SSL_get_error(ssl_, n);
  if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL) failed_ = true;
  ERR_clear_error();
  return false;
}

void TlsSession::close_notify() {
  if (busy_ || failed_ || !handshake_done()) return;
  ERR_clear_error();
  busy_ = true;
  SSL_shutdown(ssl_);
  busy_ = false;
  ERR_clear_error();
}

bool TlsSession::on_timer() {
  if (busy_ || failed_ || !SSL_is_dtls(ssl_)) return !failed_;
  ERR_clear_error();
  busy_ = true;
  const int r = DTLSv1_handle_timeout(ssl_);
  busy_ = false;
  ERR_clear_error();
  if (r < 0) failed_ = true;
  return r >= 0;
}

bool TlsSession::handshake_done() const { return SSL_is_init_finished(ssl_) == 1; }

std::string_view TlsSession::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(data), len);
}

std::string_view TlsSession::version() const { return SSL_get_version(ssl_); }

}  // namespace ferry::server
