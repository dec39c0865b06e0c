// Throw-away self-signed certificates for the TLS/DTLS tests, made with OpenSSL in process and
// written as PEM files into a temporary directory that is removed afterwards.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace ferry::testing {

class CertDir {
 public:
  CertDir() {
    char tmpl[] = "/tmp/ferry-cert-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  ~CertDir() { std::filesystem::remove_all(dir_); }
  CertDir(const CertDir&) = delete;
  CertDir& operator=(const CertDir&) = delete;

  std::string path(const std::string& name) const { return (std::filesystem::path(dir_) / name).string(); }

  // Writes `name`.crt and `name`.key (P-256, CN=`cn`); true on success.
  bool make(const std::string& name, const std::string& cn) const {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    bool ok = key != nullptr && x != nullptr;
    if (ok) {
      X509_set_version(x, 2);
      ASN1_INTEGER_set(X509_get_serialNumber(x), serial_++);
      X509_gmtime_adj(X509_getm_notBefore(x), -60);
      X509_gmtime_adj(X509_getm_notAfter(x), 86400);
      X509_set_pubkey(x, key);
      X509_NAME* n = X509_get_subject_name(x);
      X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
      X509_set_issuer_name(x, n);
      ok = X509_sign(x, key, EVP_sha256()) > 0;
    }
    if (ok) ok = write(path(name + ".crt"), [&](BIO* b) { return PEM_write_bio_X509(b, x) == 1; }) &&
                 write(path(name + ".key"), [&](BIO* b) {
                   return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
                 });
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
  }

 private:
  template <class F>
  static bool write(const std::string& file, F&& f) {
    BIO* b = BIO_new_file(file.c_str(), "w");
    if (b == nullptr) return false;
    const bool ok = f(b);
    BIO_free(b);
    return ok;
  }

  std::string dir_;
  mutable long serial_ = 1;
};

}  // namespace ferry::testing
