// Certificates and protocol settings for the tls and dtls listeners.
//
// TlsContext is one immutable load of the certificate and key: an SSL_CTX for TLS 1.2/1.3 over
// TCP and one for DTLS 1.2 over UDP. TlsCertificates holds the current TlsContext and replaces
// it on reload() (SIGHUP) or when the files change (watch()); connections already open keep the
// context they started with (each SSL holds a reference to its SSL_CTX), new handshakes get the
// new one. Workers read it through a TlsContextCache, which only takes the lock when the
// generation moved, and only on the accept path.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

typedef struct ssl_ctx_st SSL_CTX;

namespace ferry::server {

// Forward secrecy and AEAD only: Mozilla's "intermediate" TLS 1.2 list without the DHE suites.
inline constexpr const char* kDefaultTlsCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* kDefaultTlsCiphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

struct TlsOptions {
  std::string cert_file;                               // PEM chain, leaf first
  std::string key_file;                                // PEM private key, unencrypted
  std::string ciphers = kDefaultTlsCiphers;            // TLS 1.2 and DTLS 1.2 (OpenSSL cipher list)
  std::string ciphersuites = kDefaultTlsCiphersuites;  // TLS 1.3
  bool tls13_only = false;                             // minimum TLS version 1.3 instead of 1.2 (DTLS stays 1.2)
};

class TlsContext {
 public:
  // Reads the files and builds both contexts; nullptr with *error set ("tls.cert /x.pem: ...").
  static std::shared_ptr<const TlsContext> load(const TlsOptions& options, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* tls() const { return tls_; }
  SSL_CTX* dtls() const { return dtls_; }
  // "subject CN=turn.example.org, expires 2030-01-01 00:00:00 GMT", for the log.
  const std::string& description() const { return description_; }

 private:
  TlsContext() = default;
  SSL_CTX* tls_ = nullptr;
  SSL_CTX* dtls_ = nullptr;
  std::string description_;
};

// ALPN (RFC 7443): the protocol the server picks from a client's list, or nullopt when the list
// names neither "stun.turn" nor "stun.nat-discovery" (the handshake then goes on without ALPN).
// `client_list` is the wire format: length-prefixed names.
std::optional<std::string> select_alpn(const unsigned char* client_list, unsigned int len);

class TlsCertificates {
 public:
  // Loads the files once; nullptr with *error set when they do not make a usable context.
  static std::shared_ptr<TlsCertificates> load(TlsOptions options, std::string* error);
  ~TlsCertificates();  // stops the watcher
  TlsCertificates(const TlsCertificates&) = delete;
  TlsCertificates& operator=(const TlsCertificates&) = delete;

  std::shared_ptr<const TlsContext> current() const;
  // Bumped by every successful reload.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // Reads the files again. On failure the current context stays and the error is returned;
  // either way the outcome is logged. Thread-safe.
  std::optional<std::string> reload();
  // Checks the files' modification time, size and inode every `interval` on a background thread
  // and reloads when one changed (certificate renewal without a SIGHUP). Zero: no watching.
  void watch(std::chrono::seconds interval);

 private:
  explicit TlsCertificates(TlsOptions options) : options_(std::move(options)) {}
  std::string file_stamp() const;  // identifies the files' current versions
  void stop_watching();

  const TlsOptions options_;
  mutable std::mutex mutex_;  // guards current_
  std::shared_ptr<const TlsContext> current_;
  std::atomic<uint64_t> generation_{0};
  std::mutex reload_mutex_;  // one reload at a time
  std::string stamp_;        // of the files behind current_, under reload_mutex_

  std::mutex watch_mutex_;
  std::condition_variable watch_wake_;
  bool watch_stop_ = false;
  std::thread watcher_;
};

// A worker's view of the current context: a lock-free generation check per use, the lock only
// after a reload.
class TlsContextCache {
 public:
  explicit TlsContextCache(std::shared_ptr<TlsCertificates> source) : source_(std::move(source)) {}
  // nullptr when there is no source.
  const TlsContext* get();
  bool empty() const { return source_ == nullptr; }

 private:
  std::shared_ptr<TlsCertificates> source_;
  std::shared_ptr<const TlsContext> context_;
  uint64_t generation_ = ~uint64_t{0};
};

}  // namespace ferry::server
