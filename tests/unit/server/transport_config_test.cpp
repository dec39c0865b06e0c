// The TLS and connection-limit keys of the configuration, their flags, and how they become the
// workers' transport settings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <variant>

#include "server/app/cli.h"
#include "server/config/config.h"
#include "server/worker/transport_config.h"
#include "tests/unit/fixtures/test_certs.h"

namespace ferry::server {
namespace {

using ::testing::HasSubstr;

ConfigResult load_yaml(const std::string& yaml, const Environment& env = {}) {
  return load_config_string(yaml, "ferry.yaml", env);
}

TEST(TransportConfig, Defaults) {
  Config c;
  EXPECT_EQ(c.limits.max_connections, 10000u);
  EXPECT_EQ(c.limits.max_connections_per_ip, 256u);
  EXPECT_EQ(c.limits.handshake_timeout, 10u);
  EXPECT_EQ(c.limits.connection_idle_timeout, 300u);
  EXPECT_EQ(c.limits.connection_write_budget, 262144u);
  EXPECT_EQ(c.tls.min_version, "1.2");
  EXPECT_EQ(c.tls.reload_interval, 60u);
  const TlsOptions o = tls_options(c);
  EXPECT_EQ(o.ciphers, kDefaultTlsCiphers);
  EXPECT_EQ(o.ciphersuites, kDefaultTlsCiphersuites);
  EXPECT_FALSE(o.tls13_only);
  EXPECT_FALSE(needs_tls(c));
}

TEST(TransportConfig, KeysAreReadAndConverted) {
  auto r = load_yaml(R"(
listeners: ["0.0.0.0:443/tls", "0.0.0.0:443/dtls"]
limits:
  max_connections: 500
  max_connections_per_ip: 7
  handshake_timeout: 3
  connection_idle_timeout: 45
  connection_write_budget: 65536
tls:
  cert: /etc/ferry/cert.pem
  key: /etc/ferry/key.pem
  ciphers: ECDHE-ECDSA-AES128-GCM-SHA256
  ciphersuites: TLS_AES_256_GCM_SHA384
  min_version: "1.3"
  reload_interval: 0
)");
  ASSERT_TRUE(r) << r.error().message;
  const Config& c = *r;
  EXPECT_TRUE(needs_tls(c));
  const ConnectionLimits l = connection_limits(c);
  EXPECT_EQ(l.max_connections, 500u);
  EXPECT_EQ(l.max_connections_per_ip, 7u);
  EXPECT_EQ(l.handshake_timeout_ms, 3000u);
  EXPECT_EQ(l.idle_timeout_ms, 45000u);
  EXPECT_EQ(l.write_budget, 65536u);
  const TlsOptions o = tls_options(c);
  EXPECT_EQ(o.cert_file, "/etc/ferry/cert.pem");
  EXPECT_EQ(o.key_file, "/etc/ferry/key.pem");
  EXPECT_EQ(o.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
  EXPECT_EQ(o.ciphersuites, "TLS_AES_256_GCM_SHA384");
  EXPECT_TRUE(o.tls13_only);
  EXPECT_EQ(c.tls.reload_interval, 0u);
  const std::string dump = dump_effective(c);
  EXPECT_THAT(dump, HasSubstr("max_connections_per_ip: 7"));
  EXPECT_THAT(dump, HasSubstr("ciphersuites: TLS_AES_256_GCM_SHA384"));
}

TEST(TransportConfig, BadValuesNameTheKey) {
  auto error = [](const std::string& yaml) {
    auto r = load_yaml(yaml);
    return r ? std::string("(accepted)") : r.error().message;
  };
  EXPECT_EQ(error("tls:\n  min_version: \"1.1\"\n"), "ferry.yaml:2: tls.min_version: must be 1.2 or 1.3 (got '1.1')");
  EXPECT_EQ(error("limits:\n  handshake_timeout: 0\n"),
            "ferry.yaml:2: limits.handshake_timeout: must be at least 1 (got 0)");
  EXPECT_EQ(error("limits:\n  connection_write_budget: 100\n"),
            "ferry.yaml:2: limits.connection_write_budget: must be at least 4096 (got 100)");
  EXPECT_THAT(error("limits:\n  max_conections: 5\n"), HasSubstr("did you mean 'max_connections'?"));
}

TEST(TransportConfig, EnvironmentVariables) {
  auto r = load_yaml("", {{"FERRY_LIMITS_MAX_CONNECTIONS_PER_IP", "3"},
                          {"FERRY_TLS_MIN_VERSION", "1.3"},
                          {"FERRY_TLS_RELOAD_INTERVAL", "5"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->limits.max_connections_per_ip, 3u);
  EXPECT_EQ(r->tls.min_version, "1.3");
  EXPECT_EQ(r->tls.reload_interval, 5u);
}

TEST(TransportConfig, ConfigureLoadsTheCertificateOnlyWhenNeeded) {
  WorkerSettings s;
  Config plain;
  EXPECT_EQ(configure_transports(plain, s), std::nullopt);
  EXPECT_EQ(s.tls, nullptr);
  EXPECT_EQ(s.tcp.max_connections_per_ip, 256u);

  testing::CertDir certs;
  ASSERT_TRUE(certs.make("s", "s.ferry.test"));
  auto r = load_yaml("listeners: [\"127.0.0.1:5349/tls\"]\ntls:\n  cert: " + certs.path("s.crt") +
                     "\n  key: " + certs.path("missing.key") + "\n  reload_interval: 0\n");
  ASSERT_TRUE(r) << r.error().message;
  auto err = configure_transports(*r, s);
  ASSERT_TRUE(err.has_value());
  EXPECT_THAT(*err, HasSubstr("tls.key '" + certs.path("missing.key") + "'"));

  r.value().tls.key = certs.path("s.key");
  EXPECT_EQ(configure_transports(*r, s), std::nullopt);
  ASSERT_NE(s.tls, nullptr);
  EXPECT_THAT(s.tls->current()->description(), HasSubstr("s.ferry.test"));
}

TEST(TransportConfig, TlsFlagsAndHelp) {
  const char* argv[] = {"ferry", "--listen", "127.0.0.1:5349/tls", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"};
  auto parsed = parse_command_line(7, argv, {});
  ASSERT_TRUE(std::holds_alternative<RunConfig>(parsed));
  const Config& c = std::get<RunConfig>(parsed).config;
  EXPECT_EQ(c.tls.cert, "/c.pem");
  EXPECT_EQ(c.tls.key, "/k.pem");
  EXPECT_EQ(c.origins.at("tls.cert"), "--tls-cert");
  const std::string help = help_text();
  EXPECT_THAT(help, HasSubstr("--tls-cert"));
  EXPECT_THAT(help, HasSubstr("--tls-key"));
  EXPECT_THAT(help, HasSubstr("SIGHUP reloads the TLS certificate"));
  EXPECT_THAT(help, HasSubstr("FERRY_LIMITS_MAX_CONNECTIONS_PER_IP"));
  EXPECT_THAT(help, HasSubstr("FERRY_TLS_CIPHERS"));
}

}  // namespace
}  // namespace ferry::server
