#include "server/tls/tls_context.h"

#include <sys/stat.h>

#include <cstring>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "server/tls/dtls_cookie.h"

namespace ferry::server {

namespace {

// The earliest queued OpenSSL error as text, and the queue emptied.
std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? std::string(reason) : "OpenSSL error " + std::to_string(e);
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Encrypted keys are not supported; without this OpenSSL would prompt on the terminal.
int no_password(char*, int, int, void*) { return 0; }

// RFC 7443 §4: the ALPN labels for STUN and TURN over (D)TLS.
constexpr std::string_view kAlpnTurn = "stun.turn";
constexpr std::string_view kAlpnNatDiscovery = "stun.nat-discovery";

// The first entry of the client's list we speak, as a pointer to its length byte; nullptr if none.
const unsigned char* find_alpn(const unsigned char* in, unsigned int len) {
  unsigned int i = 0;
  while (i < len) {
    const unsigned int n = in[i];
    if (n == 0 || i + 1 + n > len) return nullptr;  // malformed list
    const std::string_view name(reinterpret_cast<const char*>(in + i + 1), n);
    if (name == kAlpnTurn || name == kAlpnNatDiscovery) return in + i;
    i += 1 + n;
  }
  return nullptr;
}

// Clients that offer other protocols only (or none) still get STUN/TURN: RFC 7443 makes ALPN
// optional, and refusing them would only break clients that send a generic list.
int alpn_select(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in, unsigned int in_len,
                void*) {
  const unsigned char* p = find_alpn(in, in_len);
  if (p == nullptr) return SSL_TLSEXT_ERR_NOACK;
  *out = p + 1;
  *out_len = *p;
  return SSL_TLSEXT_ERR_OK;
}

std::string describe_certificate(SSL_CTX* ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return "no certificate";
  std::string out = "subject ";
  char name[512];
  X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name);
  out += name;
  BIO* b = BIO_new(BIO_s_mem());
  if (b != nullptr && ASN1_TIME_print(b, X509_get0_notAfter(cert)) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    out += ", expires ";
    out.append(data, static_cast<size_t>(n));
  }
  BIO_free(b);
  return out;
}

// One context: protocol versions, ciphers, certificate and key, ALPN, no session state.
bool configure(SSL_CTX* ctx, const TlsOptions& o, bool dtls, std::string* error) {
  auto fail = [&](std::string message) {
    *error = std::move(message);
    return false;
  };
  SSL_CTX_set_default_passwd_cb(ctx, &no_password);
  const int min = dtls ? DTLS1_2_VERSION : (o.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  const int max = dtls ? DTLS1_2_VERSION : TLS1_3_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, min) != 1 || SSL_CTX_set_max_proto_version(ctx, max) != 1)
    return fail("cannot restrict protocol versions: " + openssl_error());
  // No renegotiation (a CPU amplifier), no compression (CRIME), server cipher order. No session
  // cache or tickets: resumption would need state shared between the worker threads.
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (!dtls) SSL_CTX_set_num_tickets(ctx, 0);
  if (SSL_CTX_set_cipher_list(ctx, o.ciphers.c_str()) != 1)
    return fail("tls.ciphers: no usable cipher in " + quoted(o.ciphers) + " (" + openssl_error() + ")");
  if (!dtls && SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1)
    return fail("tls.ciphersuites: no usable TLS 1.3 suite in " + quoted(o.ciphersuites) + " (" + openssl_error() +
                ")");
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1)
    return fail("tls.cert " + quoted(o.cert_file) + ": " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
      return fail("tls.key " + quoted(o.key_file) + ": " + openssl_error() + " (an unencrypted PEM key is needed)");
    ERR_clear_error();
    return fail("tls.key " + quoted(o.key_file) + " does not belong to the certificate in tls.cert " +
                quoted(o.cert_file));
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("tls.key " + quoted(o.key_file) + " does not belong to the certificate in tls.cert " +
                quoted(o.cert_file));
  SSL_CTX_set_alpn_select_cb(ctx, &alpn_select, nullptr);
  if (dtls) install_dtls_cookie_callbacks(ctx);
  return true;
}

}  // namespace

std::optional<std::string> select_alpn(const unsigned char* client_list, unsigned int len) {
  const unsigned char* p = find_alpn(client_list, len);
  if (p == nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(p + 1), *p);
}

// ---- TlsContext ---------------------------------------------------------------------------------

std::shared_ptr<const TlsContext> TlsContext::load(const TlsOptions& options, std::string* error) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->tls_ = SSL_CTX_new(TLS_server_method());
  c->dtls_ = SSL_CTX_new(DTLS_server_method());
  if (c->tls_ == nullptr || c->dtls_ == nullptr) {
    *error = "cannot create a TLS context: " + openssl_error();
    return nullptr;
  }
  if (!configure(c->tls_, options, false, error) || !configure(c->dtls_, options, true, error)) return nullptr;
  c->description_ = describe_certificate(c->tls_);
  return c;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(tls_);  // sessions still open hold their own references
  SSL_CTX_free(dtls_);
}

// ---- TlsCertificates ----------------------------------------------------------------------------

std::shared_ptr<TlsCertificates> TlsCertificates::load(TlsOptions options, std::string* error) {
  std::shared_ptr<TlsCertificates> c(new TlsCertificates(std::move(options)));
  c->stamp_ = c->file_stamp();
  c->current_ = TlsContext::load(c->options_, error);
  if (!c->current_) return nullptr;
  return c;
}

TlsCertificates::~TlsCertificates() { stop_watching(); }

std::shared_ptr<const TlsContext> TlsCertificates::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

std::optional<std::string> TlsCertificates::reload() {
  std::lock_guard reloading(reload_mutex_);
  // The stamp is taken first, so a file replaced while we read it is read again next time.
  std::string stamp = file_stamp();
  std::string error;
  auto next = TlsContext::load(options_, &error);
  if (!next) {
    spdlog::warn("TLS certificate reload failed, still serving the previous certificate: {}", error);
    return error;
  }
  {
    std::lock_guard lock(mutex_);
    current_ = next;
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  stamp_ = std::move(stamp);
  spdlog::info("TLS certificate reloaded from {}: {}", options_.cert_file, next->description());
  return std::nullopt;
}

std::string TlsCertificates::file_stamp() const {
  std::string out;
  for (const std::string* path : {&options_.cert_file, &options_.key_file}) {
    struct stat st {};
    if (::stat(path->c_str(), &st) != 0) {
      out += "missing;";
      continue;
    }
    out += std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) +
           "." + std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  return out;
}

void TlsCertificates::watch(std::chrono::seconds interval) {
  stop_watching();
  if (interval.count() <= 0) return;
  {
    std::lock_guard lock(watch_mutex_);
    watch_stop_ = false;
  }
  watcher_ = std::thread([this, interval] {
    std::string failed_stamp;  // a broken file is reported once, not every interval
    std::unique_lock lock(watch_mutex_);
    while (!watch_wake_.wait_for(lock, interval, [this] { return watch_stop_; })) {
      lock.unlock();
      const std::string stamp = file_stamp();
      bool changed = false;
      {
        std::lock_guard reloading(reload_mutex_);
        changed = stamp != stamp_ && stamp != failed_stamp;
      }
      if (changed && reload().has_value()) failed_stamp = stamp;
      lock.lock();
    }
  });
}

void TlsCertificates::stop_watching() {
  {
    std::lock_guard lock(watch_mutex_);
    watch_stop_ = true;
  }
  watch_wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

// ---- TlsContextCache ----------------------------------------------------------------------------

const TlsContext* TlsContextCache::get() {
  if (!source_) return nullptr;
  const uint64_t g = source_->generation();
  if (g != generation_ || !context_) {
    context_ = source_->current();
    generation_ = g;
  }
  return context_.get();
}

}  // namespace ferry::server
