// Config schema, YAML loading, FERRY_* overrides, command line, dump masking and logging setup.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

#include "server/app/cli.h"
#include "server/config/config.h"
#include "server/config/config_schema.h"
#include "server/ops/ice_servers.h"
#include "server/app/log.h"

namespace ferry::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

namespace fs = std::filesystem;

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ferry-config-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& contents) const {
    auto p = (fs::path(path_) / name).string();
    std::ofstream(p, std::ios::binary) << contents;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string error_of(const ConfigResult& r) { return r ? std::string("(no error)") : r.error().message; }

ConfigResult load(const std::string& yaml, const Environment& env = {}) {
  return load_config_string(yaml, "ferry.yaml", env);
}

// Runs parse_command_line with argv built from `args` (program name added).
CommandLineResult run(std::vector<std::string> args, const Environment& env = {}) {
  args.insert(args.begin(), "ferry");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return parse_command_line(static_cast<int>(args.size()), argv.data(), env);
}

const ExitNow& exit_of(const CommandLineResult& r) {
  static const ExitNow none{-1, "(not an ExitNow)"};
  const auto* e = std::get_if<ExitNow>(&r);
  return e ? *e : none;
}

const Config& config_of(const CommandLineResult& r) {
  const auto* run = std::get_if<RunConfig>(&r);
  if (!run) ADD_FAILURE() << "expected RunConfig, got exit: " << exit_of(r).text;
  static const Config none;
  return run ? run->config : none;
}

// ------------------------------------------------------------------------------------------------
// Defaults
// ------------------------------------------------------------------------------------------------

TEST(ConfigDefaults, EmbeddedDefaultsRunStunOn3478) {
  Config c;
  EXPECT_EQ(c.realm, "ferry");
  EXPECT_THAT(c.software, StartsWith("ferry/"));
  EXPECT_EQ(c.workers, 0u);
  ASSERT_EQ(c.listeners.size(), 4u);
  EXPECT_EQ(c.listeners[0].address.to_string(), "0.0.0.0:3478");
  EXPECT_EQ(c.listeners[0].transport, Transport::Udp);
  EXPECT_EQ(c.listeners[1].address.to_string(), "[::]:3478");
  EXPECT_EQ(c.listeners[3].transport, Transport::Tcp);
  ASSERT_EQ(c.relay.addresses.size(), 2u);
  EXPECT_EQ(c.relay.addresses[0].address.ip_string(), "0.0.0.0");
  EXPECT_EQ(c.relay.addresses[1].address.ip_string(), "::");
  EXPECT_EQ(c.relay.port_min, 49152);
  EXPECT_EQ(c.relay.port_max, 65535);
  EXPECT_EQ(c.auth.nonce_lifetime, 600u);
  EXPECT_TRUE(c.auth.users.empty());
  EXPECT_FALSE(c.turn_enabled());
  EXPECT_EQ(c.limits.max_permissions_per_allocation, 32u);
  EXPECT_EQ(c.limits.max_channels_per_allocation, 32u);
  EXPECT_EQ(c.limits.default_lifetime, 600u);
  EXPECT_EQ(c.limits.max_lifetime, 3600u);
  EXPECT_EQ(c.limits.unauth_requests_per_second, 50u);
  EXPECT_EQ(c.log.level, LogLevel::Info);
  EXPECT_EQ(c.log.format, LogFormat::Text);
  EXPECT_EQ(c.data_path, DataPath::User);  // the user-space path stays the default
  ASSERT_TRUE(c.http.address.has_value());
  EXPECT_EQ(c.http.address->to_string(), "127.0.0.1:9641");
  EXPECT_TRUE(c.database.url.empty());
  EXPECT_TRUE(c.origins.empty());
  EXPECT_FALSE(validate_config(c).has_value());
}

TEST(ConfigDefaults, EmptyDocumentGivesDefaults) {
  auto r = load("");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->realm, "ferry");
  auto r2 = load("# only a comment\n");
  ASSERT_TRUE(r2) << error_of(r2);
  auto r3 = load("limits:\n");  // a section with nothing under it
  ASSERT_TRUE(r3) << error_of(r3);
}

// ------------------------------------------------------------------------------------------------
// Full files
// ------------------------------------------------------------------------------------------------

TEST(ConfigFile, ExampleLoadsCleanly) {
  auto r = load_config_file(FERRY_SOURCE_DIR "/examples/ferry.yaml");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->realm, "example.org");
  EXPECT_EQ(r->listeners.size(), 4u);
  EXPECT_EQ(r->listeners[3].address.to_string(), "[::]:3478");
  EXPECT_EQ(r->listeners[3].transport, Transport::Tcp);
  ASSERT_TRUE(r->relay.addresses[0].external.has_value());
  EXPECT_EQ(r->relay.addresses[0].external->ip_string(), "203.0.113.10");
  ASSERT_EQ(r->auth.users.size(), 2u);
  EXPECT_TRUE(r->auth.users[1].key.has_value());
  EXPECT_EQ(r->auth.shared_secrets.size(), 2u);
  EXPECT_EQ(r->peers.deny.size(), 4u);
  EXPECT_TRUE(r->turn_enabled());
  // The example names every key of the schema (as a key or a commented alternative).
  std::ifstream in(FERRY_SOURCE_DIR "/examples/ferry.yaml");
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& [var, key] : environment_variables()) {
    auto leaf = key.substr(key.rfind('.') == std::string::npos ? 0 : key.rfind('.') + 1);
    EXPECT_THAT(text.str(), HasSubstr(leaf + ":")) << key;
  }
  for (const char* k : {"password_file:", "secret_file:", "url_file:", "external:", "userhash:"})
    EXPECT_THAT(text.str(), HasSubstr(k));
}

TEST(ConfigFile, EveryKeyIsRead) {
  TempDir dir;
  dir.write("carol.pw", "s3cret-from-file\n");
  dir.write("turn.secret", "file-secret\r\n");
  dir.write("db.url", "postgresql://ferry:dbpass@db/ferry\n");
  auto path = dir.write("ferry.yaml", R"(
realm: example.org
software: "ferry test"
workers: 4
data_path: auto
listeners:
  - {address: 192.0.2.1, port: 3479, transport: udp}
  - {address: "::1", transport: tls}
  - 0.0.0.0:3480/dtls
relay:
  addresses:
    - {address: 10.0.0.5, external: 203.0.113.5}
    - "2001:db8::5"
  port_min: 50000
  port_max: 50100
auth:
  nonce_lifetime: 300
  userhash: yes
  users:
    - {name: alice, password: pw1}
    - {name: bob, key: 00112233445566778899AABBCCDDEEFF}
    - {name: carol, password_file: carol.pw}
  shared_secrets:
    - plain-secret
    - secret: mapped-secret
    - secret_file: turn.secret
peers:
  allow: [10.1.2.3, "fe80::/10"]
  deny: [10.0.0.0/8]
limits:
  max_allocations: 1000
  max_allocations_per_user: 10
  max_permissions_per_allocation: 8
  max_channels_per_allocation: 16
  bandwidth_per_allocation: 1000000
  default_lifetime: 300
  max_lifetime: 1200
  unauth_requests_per_second: 0
tls:
  cert: /etc/ferry/cert.pem
  key: key.pem
log:
  level: debug
  format: json
http:
  address: "[::1]:9000"
database:
  url_file: db.url
)");
  auto r = load_config_file(path);
  ASSERT_TRUE(r) << error_of(r);
  const Config& c = *r;
  EXPECT_EQ(c.realm, "example.org");
  EXPECT_EQ(c.software, "ferry test");
  EXPECT_EQ(c.workers, 4u);
  EXPECT_EQ(c.data_path, DataPath::Auto);
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].address.to_string(), "192.0.2.1:3479");
  EXPECT_EQ(c.listeners[1].address.to_string(), "[::1]:5349");  // tls default port
  EXPECT_EQ(c.listeners[1].transport, Transport::Tls);
  EXPECT_EQ(c.listeners[2].address.to_string(), "0.0.0.0:3480");
  EXPECT_EQ(c.listeners[2].transport, Transport::Dtls);
  ASSERT_EQ(c.relay.addresses.size(), 2u);
  EXPECT_EQ(c.relay.addresses[0].external->ip_string(), "203.0.113.5");
  EXPECT_FALSE(c.relay.addresses[1].external.has_value());
  EXPECT_EQ(c.relay.port_min, 50000);
  EXPECT_EQ(c.relay.port_max, 50100);
  EXPECT_EQ(c.auth.nonce_lifetime, 300u);
  EXPECT_TRUE(c.auth.userhash);
  ASSERT_EQ(c.auth.users.size(), 3u);
  EXPECT_EQ(c.auth.users[0].password, "pw1");
  ASSERT_TRUE(c.auth.users[1].key.has_value());
  EXPECT_EQ((*c.auth.users[1].key)[0], 0x00);
  EXPECT_EQ((*c.auth.users[1].key)[15], 0xFF);
  EXPECT_EQ(c.auth.users[2].password, "s3cret-from-file");  // trailing newline dropped
  EXPECT_EQ(c.auth.users[2].password_file, (fs::path(dir.path()) / "carol.pw").string());
  ASSERT_EQ(c.auth.shared_secrets.size(), 3u);
  EXPECT_EQ(c.auth.shared_secrets[0].secret, "plain-secret");
  EXPECT_EQ(c.auth.shared_secrets[1].secret, "mapped-secret");
  EXPECT_EQ(c.auth.shared_secrets[2].secret, "file-secret");
  EXPECT_EQ(c.peers.allow, (std::vector<std::string>{"10.1.2.3", "fe80::/10"}));
  EXPECT_EQ(c.peers.deny, (std::vector<std::string>{"10.0.0.0/8"}));
  EXPECT_EQ(c.limits.max_allocations, 1000u);
  EXPECT_EQ(c.limits.max_allocations_per_user, 10u);
  EXPECT_EQ(c.limits.max_permissions_per_allocation, 8u);
  EXPECT_EQ(c.limits.max_channels_per_allocation, 16u);
  EXPECT_EQ(c.limits.bandwidth_per_allocation, 1000000u);
  EXPECT_EQ(c.limits.default_lifetime, 300u);
  EXPECT_EQ(c.limits.max_lifetime, 1200u);
  EXPECT_EQ(c.limits.unauth_requests_per_second, 0u);
  EXPECT_EQ(c.tls.cert, "/etc/ferry/cert.pem");
  EXPECT_EQ(c.tls.key, (fs::path(dir.path()) / "key.pem").string());  // relative to the file
  EXPECT_EQ(c.log.level, LogLevel::Debug);
  EXPECT_EQ(c.log.format, LogFormat::Json);
  EXPECT_EQ(c.http.address->to_string(), "[::1]:9000");
  EXPECT_EQ(c.database.url, "postgresql://ferry:dbpass@db/ferry");
  EXPECT_EQ(c.origins.at("limits.max_lifetime"), path + ":37");
  EXPECT_EQ(c.origins.at("realm"), path + ":2");
}

TEST(ConfigFile, EmptyHttpAddressDisables) {
  auto r = load("http:\n  address: \"\"\n");
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_FALSE(r->http.address.has_value());
}

// ------------------------------------------------------------------------------------------------
// Errors: each names the key and the line
// ------------------------------------------------------------------------------------------------

TEST(ConfigErrors, MissingFile) {
  auto r = load_config_file("/nonexistent/ferry.yaml");
  EXPECT_EQ(error_of(r), "config file '/nonexistent/ferry.yaml' does not exist");
  TempDir dir;
  EXPECT_THAT(error_of(load_config_file(dir.path())), HasSubstr("is a directory"));
}

TEST(ConfigErrors, OutOfRangeNamesKeyAndLine) {
  auto r = load("realm: x\nlimits:\n  max_lifetime: 7200\n");
  EXPECT_EQ(error_of(r), "ferry.yaml:3: limits.max_lifetime: must be at most 3600 (got 7200)");
  EXPECT_EQ(error_of(load("relay:\n  port_min: 0\n")), "ferry.yaml:2: relay.port_min: must be at least 1 (got 0)");
  EXPECT_EQ(error_of(load("relay:\n  port_max: 70000\n")),
            "ferry.yaml:2: relay.port_max: must be at most 65535 (got 70000)");
  EXPECT_EQ(error_of(load("workers: -1\n")), "ferry.yaml:1: workers: must not be negative (got -1)");
  EXPECT_EQ(error_of(load("limits:\n  max_allocations: 99999999999999999999999\n")),
            "ferry.yaml:2: limits.max_allocations: must be at most 4294967295 (got 99999999999999999999999)");
}

TEST(ConfigErrors, UnknownKeyWithSuggestion) {
  EXPECT_EQ(error_of(load("realm: x\n\n\nrelays:\n  port_min: 1\n")),
            "ferry.yaml:4: unknown key 'relays' (did you mean 'relay'?)");
  EXPECT_EQ(error_of(load("limits:\n  max_lifetme: 10\n")),
            "ferry.yaml:2: unknown key 'max_lifetme' in limits (did you mean 'max_lifetime'?)");
  EXPECT_EQ(error_of(load("listeners:\n  - address: 0.0.0.0\n    prot: 1\n")),
            "ferry.yaml:3: unknown key 'prot' in listeners[0] (did you mean 'port'?)");
  // No close match: lists the known keys instead.
  EXPECT_THAT(error_of(load("zzzzzzzz: 1\n")),
              StartsWith("ferry.yaml:1: unknown key 'zzzzzzzz' (known keys: realm software workers"));
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(error_of(load("workers: many\n")), "ferry.yaml:1: workers: must be a whole number (got 'many')");
  EXPECT_EQ(error_of(load("limits:\n  max_lifetime: [1, 2]\n")),
            "ferry.yaml:2: limits.max_lifetime: must be a single value, not a list");
  EXPECT_EQ(error_of(load("realm:\n  a: b\n")), "ferry.yaml:1: realm: must be a single value, not a mapping");
  EXPECT_EQ(error_of(load("limits: 5\n")), "ferry.yaml:1: limits: must be a mapping of keys, not a value");
  EXPECT_EQ(error_of(load("listeners: udp\n")), "ferry.yaml:1: listeners: must be a list, not a value");
  EXPECT_EQ(error_of(load("auth:\n  userhash: maybe\n")),
            "ferry.yaml:2: auth.userhash: must be true or false (got 'maybe')");
  EXPECT_EQ(error_of(load("log:\n  level: loud\n")),
            "ferry.yaml:2: log.level: must be one of trace, debug, info, warn, error, off (got 'loud')");
  EXPECT_EQ(error_of(load("log:\n  format: xml\n")), "ferry.yaml:2: log.format: must be text or json (got 'xml')");
  EXPECT_EQ(error_of(load("data_path: xdp\n")), "ferry.yaml:1: data_path: must be user, kernel or auto (got 'xdp')");
  EXPECT_EQ(error_of(load("realm:\n")), "ferry.yaml:1: realm: must not be empty");
  EXPECT_EQ(error_of(load("workers:\n")), "ferry.yaml:1: workers: needs a value (a whole number)");
  EXPECT_EQ(error_of(load("- a\n- b\n")),
            "ferry.yaml:1: the top level must be a mapping of keys (like 'realm: example.org'), not a list");
}

TEST(ConfigErrors, ListItems) {
  EXPECT_EQ(error_of(load("listeners:\n  - address: 0.0.0.0\n    transport: quic\n")),
            "ferry.yaml:3: listeners[0].transport: must be one of udp, tcp, tls, dtls (got 'quic')");
  EXPECT_EQ(error_of(load("listeners:\n  - address: 0.0.0.0\n  - address: 300.1.1.1\n")),
            "ferry.yaml:3: listeners[1].address: must be an IPv4 or IPv6 address (got '300.1.1.1')");
  EXPECT_EQ(error_of(load("listeners:\n  - port: 3478\n")),
            "ferry.yaml:2: listeners[0]: needs an address (0.0.0.0 or :: for all)");
  EXPECT_EQ(error_of(load("listeners: []\n")), "ferry.yaml:1: listeners: needs at least one listener");
  EXPECT_THAT(error_of(load("listeners:\n  - 1.2.3.4:3478/sctp\n")),
              StartsWith("ferry.yaml:2: listeners[0]: transport after '/' must be udp, tcp, tls or dtls"));
  EXPECT_EQ(error_of(load("relay:\n  addresses:\n    - {address: 10.0.0.1, external: nope}\n")),
            "ferry.yaml:3: relay.addresses[0].external: must be an IPv4 or IPv6 address (got 'nope')");
  EXPECT_EQ(error_of(load("peers:\n  deny:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n")),
            "ferry.yaml:4: peers.deny[1]: prefix length must be 0-32 (got '10.0.0.0/33')");
  EXPECT_EQ(error_of(load("peers:\n  allow: [example.com]\n")),
            "ferry.yaml:2: peers.allow[0]: must be an address or CIDR like 10.0.0.0/8 or fc00::/7 (got 'example.com')");
}

TEST(ConfigErrors, Users) {
  EXPECT_EQ(error_of(load("auth:\n  users:\n    - name: alice\n")),
            "ferry.yaml:3: auth.users[0]: user 'alice' needs one of password, key, password_file");
  EXPECT_EQ(
      error_of(
          load("auth:\n  users:\n    - name: alice\n      password: a\n      key: 00112233445566778899aabbccddeeff\n")),
      "ferry.yaml:5: auth.users[0].key: set only one of password, key, password_file (already have password)");
  EXPECT_EQ(error_of(load("auth:\n  users:\n    - password: a\n")), "ferry.yaml:3: auth.users[0]: needs a name");
  EXPECT_EQ(error_of(load("auth:\n  users:\n    - {name: a, key: abc}\n")),
            "ferry.yaml:3: auth.users[0].key: must be 32 hex digits, MD5(name:realm:password) (got 3 characters)");
  EXPECT_EQ(error_of(load("auth:\n  users:\n    - {name: a, key: 0011223344556677889900112233445z}\n")),
            "ferry.yaml:3: auth.users[0].key: must be 32 hex digits, MD5(name:realm:password)");
  EXPECT_EQ(error_of(load("auth:\n  users:\n    - {name: a, password: x}\n    - {name: a, password: y}\n")),
            "ferry.yaml:4: auth.users[1].name: duplicate user 'a' (first on line 3)");
  EXPECT_EQ(error_of(load("auth:\n  users:\n    - {name: a, password_file: /nonexistent/pw}\n")),
            "ferry.yaml:3: auth.users[0].password_file: cannot read '/nonexistent/pw': no such file");
  TempDir dir;
  auto empty = dir.write("empty", "\n");
  EXPECT_EQ(error_of(load("auth:\n  users:\n    - {name: a, password_file: " + empty + "}\n")),
            "ferry.yaml:3: auth.users[0].password_file: file '" + empty + "' is empty");
  EXPECT_EQ(error_of(load("auth:\n  shared_secrets:\n    - {secret: a, secret_file: b}\n")),
            "ferry.yaml:3: auth.shared_secrets[0].secret_file: set only one of secret, secret_file");
  EXPECT_EQ(error_of(load("auth:\n  shared_secrets:\n    - \"\"\n")),
            "ferry.yaml:3: auth.shared_secrets[0]: must not be empty");
}

TEST(ConfigErrors, DuplicateKey) {
  EXPECT_EQ(error_of(load("realm: a\nworkers: 1\nrealm: b\n")),
            "ferry.yaml:3: realm: duplicate key (first set on line 1)");
}

TEST(ConfigErrors, YamlSyntax) {
  auto msg = error_of(load("realm: a\nlimits:\n  max_lifetime: [1, 2\n"));
  EXPECT_THAT(msg, StartsWith("ferry.yaml:"));
  EXPECT_THAT(msg, HasSubstr("invalid YAML"));
}

TEST(ConfigErrors, CrossKeyChecksNameTheLine) {
  EXPECT_EQ(error_of(load("relay:\n  port_min: 60000\n  port_max: 50000\n")),
            "ferry.yaml:2: relay.port_min: relay.port_min (60000) must not be above relay.port_max (50000)");
  EXPECT_EQ(
      error_of(load("limits:\n  max_lifetime: 300\n")),
      "ferry.yaml:2: limits.max_lifetime: limits.default_lifetime (600) must not be above limits.max_lifetime (300)");
  EXPECT_EQ(error_of(load("realm: x\nlisteners:\n  - {address: 0.0.0.0, transport: tls}\n")),
            "ferry.yaml:2: listeners: the tls listener on 0.0.0.0:5349 needs tls.cert and tls.key");
  EXPECT_EQ(error_of(load("tls:\n  cert: a.pem\n")),
            "ferry.yaml:2: tls.cert: tls.cert and tls.key go together: set both or neither");
  EXPECT_EQ(error_of(load("relay:\n  addresses:\n    - {address: 10.0.0.1, external: \"2001:db8::1\"}\n")),
            "ferry.yaml:2: relay.addresses: external address 2001:db8::1 is not the same IP family as 10.0.0.1");
  EXPECT_EQ(error_of(load("listeners: [1.2.3.4:3478/udp, 1.2.3.4:3478/udp]\n")),
            "ferry.yaml:1: listeners: listed twice: 1.2.3.4:3478/udp");
  EXPECT_EQ(error_of(load("database:\n  url: postgresql://a\n  url_file: /x\n")),
            "ferry.yaml:3: database.url_file: set either url or url_file, not both");
  EXPECT_EQ(error_of(load("database:\n  url: mysql://a\n")),
            "ferry.yaml:2: database.url: must be a postgresql:// URL or a libpq key=value string (got scheme 'mysql')");
}

// ------------------------------------------------------------------------------------------------
// Environment
// ------------------------------------------------------------------------------------------------

TEST(ConfigEnv, VariableNames) {
  EXPECT_EQ(env_var_for("realm"), "FERRY_REALM");
  EXPECT_EQ(env_var_for("limits.max_lifetime"), "FERRY_LIMITS_MAX_LIFETIME");
  auto vars = environment_variables();
  auto has = [&](const std::string& v) {
    return std::any_of(vars.begin(), vars.end(), [&](const auto& p) { return p.first == v; });
  };
  for (const char* v : {"FERRY_REALM", "FERRY_DATABASE_URL", "FERRY_LOG_LEVEL", "FERRY_HTTP_ADDRESS", "FERRY_WORKERS",
                        "FERRY_AUTH_SHARED_SECRETS", "FERRY_PEERS_DENY", "FERRY_LISTENERS", "FERRY_TLS_CERT"})
    EXPECT_TRUE(has(v)) << v;
}

TEST(ConfigEnv, EnvOverridesFile) {
  Environment env = {{"FERRY_REALM", "env.example.org"},
                     {"FERRY_LIMITS_MAX_LIFETIME", "1800"},
                     {"FERRY_LOG_LEVEL", "warning"},
                     {"FERRY_HTTP_ADDRESS", ""},
                     {"FERRY_DATABASE_URL", "postgresql://u:pw@h/db"},
                     {"FERRY_AUTH_SHARED_SECRETS", "s1, s2"},
                     {"FERRY_PEERS_DENY", "10.0.0.0/8,fc00::/7"},
                     {"FERRY_LISTENERS", "0.0.0.0:3478/udp"},
                     {"FERRY_RELAY_ADDRESSES", "10.0.0.2=198.51.100.2"},
                     {"UNRELATED", "x"}};
  auto r = load("realm: file.example.org\nworkers: 3\n", env);
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->realm, "env.example.org");
  EXPECT_EQ(r->workers, 3u);  // from the file, no variable
  EXPECT_EQ(r->limits.max_lifetime, 1800u);
  EXPECT_EQ(r->log.level, LogLevel::Warn);
  EXPECT_FALSE(r->http.address.has_value());
  EXPECT_EQ(r->database.url, "postgresql://u:pw@h/db");
  ASSERT_EQ(r->auth.shared_secrets.size(), 2u);
  EXPECT_EQ(r->auth.shared_secrets[1].secret, "s2");
  EXPECT_EQ(r->peers.deny, (std::vector<std::string>{"10.0.0.0/8", "fc00::/7"}));
  ASSERT_EQ(r->listeners.size(), 1u);
  EXPECT_EQ(r->relay.addresses[0].external->ip_string(), "198.51.100.2");
  EXPECT_EQ(r->origins.at("realm"), "FERRY_REALM");
  EXPECT_EQ(r->origins.at("workers"), "ferry.yaml:2");
}

TEST(ConfigEnv, BadValueNamesTheVariable) {
  EXPECT_EQ(error_of(load("", {{"FERRY_LIMITS_MAX_LIFETIME", "7200"}})),
            "FERRY_LIMITS_MAX_LIFETIME: limits.max_lifetime: must be at most 3600 (got 7200)");
  EXPECT_EQ(error_of(load("", {{"FERRY_WORKERS", "lots"}})),
            "FERRY_WORKERS: workers: must be a whole number (got 'lots')");
  EXPECT_THAT(error_of(load("", {{"FERRY_PEERS_ALLOW", "10.0.0.0/8,bogus"}})),
              StartsWith("FERRY_PEERS_ALLOW: peers.allow: "));
  // A cross-key problem caused by a variable names the variable too.
  EXPECT_EQ(error_of(load("", {{"FERRY_RELAY_PORT_MIN", "65000"}, {"FERRY_RELAY_PORT_MAX", "60000"}})),
            "FERRY_RELAY_PORT_MIN: relay.port_min: relay.port_min (65000) must not be above relay.port_max (60000)");
}

TEST(ConfigEnv, TyposWarn) {
  auto w = environment_warnings(
      {{"FERRY_RELM", "x"}, {"FERRY_CONFIG", "/etc/ferry.yaml"}, {"FERRY_SOMETHING_ELSE_ENTIRELY", "1"}});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_THAT(w[0], HasSubstr("FERRY_RELM"));
  EXPECT_THAT(w[0], HasSubstr("did you mean FERRY_REALM?"));
}

// ------------------------------------------------------------------------------------------------
// Masking and dump
// ------------------------------------------------------------------------------------------------

TEST(ConfigDump, SecretsAreMasked) {
  TempDir dir;
  dir.write("pw", "file-password\n");
  auto path = dir.write("ferry.yaml", R"(
auth:
  users:
    - {name: alice, password: alice-password}
    - {name: bob, key: 00112233445566778899aabbccddeeff}
    - {name: carol, password_file: pw}
  shared_secrets: [shared-secret-1]
database:
  url: postgresql://ferry:db-password@db/ferry
)");
  auto r = load_config_file(path, {{"FERRY_AUTH_SHARED_SECRETS", "env-secret"}});
  ASSERT_TRUE(r) << error_of(r);
  auto dump = dump_effective(*r);
  for (const char* secret : {"alice-password", "00112233445566778899aabbccddeeff", "file-password", "shared-secret-1",
                             "env-secret", "db-password"})
    EXPECT_THAT(dump, Not(HasSubstr(secret))) << dump;
  EXPECT_THAT(dump, HasSubstr("name: alice"));
  EXPECT_THAT(dump, HasSubstr("password: \"***\""));
  EXPECT_THAT(dump, HasSubstr("key: \"***\""));
  EXPECT_THAT(dump, HasSubstr("password_file: " + (fs::path(dir.path()) / "pw").string()));
  EXPECT_THAT(dump, HasSubstr("postgresql://ferry:***@db/ferry"));
  EXPECT_THAT(dump, HasSubstr("# from FERRY_AUTH_SHARED_SECRETS"));
}

TEST(ConfigDump, DefaultsDumpReloadsToTheSameConfig) {
  auto dump = dump_effective(Config());
  auto r = load(dump);
  ASSERT_TRUE(r) << error_of(r) << "\n" << dump;
  auto again = r.value();
  again.origins.clear();
  EXPECT_EQ(dump_effective(again), dump);
}

TEST(ConfigDump, ShowsOrigins) {
  auto r = load("realm: a.example\n", {{"FERRY_WORKERS", "2"}});
  ASSERT_TRUE(r) << error_of(r);
  auto dump = dump_effective(*r);
  EXPECT_THAT(dump, HasSubstr("realm: a.example  # from ferry.yaml:1"));
  EXPECT_THAT(dump, HasSubstr("workers: 2  # from FERRY_WORKERS"));
}

// ------------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------------

TEST(Cli, NoArgumentsRunsDefaults) {
  auto r = run({});
  const Config& c = config_of(r);
  EXPECT_EQ(c.realm, "ferry");
  EXPECT_EQ(c.listeners.size(), 4u);
  EXPECT_FALSE(std::get<RunConfig>(r).config_path.has_value());
}

TEST(Cli, PrecedenceDefaultsFileEnvFlags) {
  TempDir dir;
  auto path = dir.write("ferry.yaml", "realm: file\nworkers: 2\nlog:\n  level: debug\n  format: json\n");
  Environment env = {{"FERRY_REALM", "env"}, {"FERRY_WORKERS", "3"}};
  auto r = run({"--config", path, "--realm", "flag"}, env);
  const Config& c = config_of(r);
  EXPECT_EQ(c.realm, "flag");                // flag beats env and file
  EXPECT_EQ(c.workers, 3u);                  // env beats file
  EXPECT_EQ(c.log.level, LogLevel::Debug);   // file beats default
  EXPECT_EQ(c.log.format, LogFormat::Json);  // file
  EXPECT_EQ(c.limits.max_lifetime, 3600u);   // default
  EXPECT_EQ(c.origins.at("realm"), "--realm");
  EXPECT_EQ(std::get<RunConfig>(r).config_path, path);
}

TEST(Cli, ConfigPathFromEnvironment) {
  TempDir dir;
  auto path = dir.write("ferry.yaml", "realm: from-env-file\n");
  EXPECT_EQ(config_of(run({}, {{"FERRY_CONFIG", path}})).realm, "from-env-file");
}

TEST(Cli, EveryFlag) {
  auto r = run({"--realm",         "r.example",   "--listen",           "0.0.0.0:3478/udp",
                "--listen",        "[::]:3479",   "--relay-address",    "10.0.0.1",
                "--relay-address", "2001:db8::1", "--external-address", "203.0.113.1",
                "--port-range",    "50000-50010", "--log-level",        "trace",
                "--log-format",    "json",        "--http-address",     "127.0.0.1:9999",
                "--workers",       "8",           "--allow-peer",       "10.1.1.1",
                "--deny-peer",     "10.0.0.0/8",  "--deny-peer",        "fc00::/7"},
               {{"FERRY_PEERS_DENY", "192.168.0.0/16"}});
  const Config& c = config_of(r);
  EXPECT_EQ(c.realm, "r.example");
  ASSERT_EQ(c.listeners.size(), 3u);  // udp, then udp+tcp for the one without transport
  EXPECT_EQ(c.listeners[1].address.to_string(), "[::]:3479");
  EXPECT_EQ(c.listeners[2].transport, Transport::Tcp);
  ASSERT_EQ(c.relay.addresses.size(), 2u);
  EXPECT_EQ(c.relay.addresses[0].external->ip_string(), "203.0.113.1");
  EXPECT_FALSE(c.relay.addresses[1].external.has_value());
  EXPECT_EQ(c.relay.port_min, 50000);
  EXPECT_EQ(c.relay.port_max, 50010);
  EXPECT_EQ(c.log.level, LogLevel::Trace);
  EXPECT_EQ(c.log.format, LogFormat::Json);
  EXPECT_EQ(c.http.address->to_string(), "127.0.0.1:9999");
  EXPECT_EQ(c.workers, 8u);
  EXPECT_EQ(c.peers.allow, (std::vector<std::string>{"10.1.1.1"}));
  EXPECT_EQ(c.peers.deny, (std::vector<std::string>{"192.168.0.0/16", "10.0.0.0/8", "fc00::/7"}));  // added
}

TEST(Cli, SetAnySingleValueKey) {
  auto r = run({"--set", "limits.max_lifetime=1800", "--set", "database.pool_size=4", "--realm", "x"},
               {{"FERRY_LIMITS_MAX_LIFETIME", "900"}});
  const Config& c = config_of(r);
  EXPECT_EQ(c.limits.max_lifetime, 1800u);  // --set beats the environment
  EXPECT_EQ(c.database.pool_size, 4u);
  EXPECT_EQ(c.origins.at("limits.max_lifetime"), "--set limits.max_lifetime");
  EXPECT_THAT(exit_of(run({"--set", "limits.max_lifetime"})).text, HasSubstr("--set: must be KEY=VALUE"));
  EXPECT_THAT(exit_of(run({"--set", "limits.nope=1"})).text, HasSubstr("--set limits.nope: not a setting"));
  EXPECT_THAT(exit_of(run({"--set", "limits.max_lifetime=forever"})).text, HasSubstr("--set limits.max_lifetime: "));
  // The database URL may hold a password: never from argv.
  EXPECT_THAT(exit_of(run({"--set", "database.url=postgresql://u:pw@h/db"})).text, HasSubstr("never taken as flags"));
}

TEST(Cli, EmptyHttpAddressDisables) {
  EXPECT_FALSE(config_of(run({"--http-address", ""})).http.address.has_value());
  EXPECT_FALSE(config_of(run({"--http-address="})).http.address.has_value());
  EXPECT_FALSE(config_of(run({"--http-address", "off", "--realm", "x"})).http.address.has_value());
  EXPECT_EQ(config_of(run({"--http-address", "", "--realm", "x"})).realm, "x");
  EXPECT_EQ(
      exit_of(run({"--http-address", "nowhere"})).text,
      "--http-address: must be IP:PORT like 127.0.0.1:9641 or [::1]:9641, or \"\" or off to disable (got 'nowhere')\n");
}

TEST(Cli, BadFlagValuesNameTheFlag) {
  EXPECT_EQ(exit_of(run({"--workers", "x"})).code, 2);
  EXPECT_EQ(exit_of(run({"--workers", "x"})).text, "--workers: must be a whole number (got 'x')\n");
  EXPECT_EQ(exit_of(run({"--port-range", "5000"})).text,
            "--port-range: must be MIN-MAX like 49152-65535 (got '5000')\n");
  EXPECT_EQ(exit_of(run({"--port-range", "6000-5000"})).text,
            "--port-range: MIN must not be above MAX (got '6000-5000')\n");
  EXPECT_EQ(exit_of(run({"--port-range", "0-5000"})).text, "--port-range: MIN must be at least 1 (got 0)\n");
  EXPECT_THAT(exit_of(run({"--listen", "nowhere"})).text, StartsWith("--listen: must be IP[:PORT][/TRANSPORT]"));
  EXPECT_EQ(
      exit_of(run({"--external-address", "2001:db8::9", "--relay-address", "10.0.0.1"})).text,
      "--external-address: no relay address of the same IP family as 2001:db8::9 (add one with --relay-address)\n");
  EXPECT_THAT(exit_of(run({"--deny-peer", "10.0.0.0/99"})).text, StartsWith("--deny-peer: prefix length must be 0-32"));
  EXPECT_EQ(exit_of(run({"--log-level", "chatty"})).text,
            "--log-level: must be one of trace, debug, info, warn, error, off (got 'chatty')\n");
  EXPECT_EQ(exit_of(run({"--listen", "0.0.0.0:5349/tls"})).text,
            "--listen: listeners: the tls listener on 0.0.0.0:5349 needs tls.cert and tls.key\n");
}

TEST(Cli, UnknownFlagAndStrayArguments) {
  auto e = exit_of(run({"--relam", "x"}));
  EXPECT_EQ(e.code, 2);
  EXPECT_THAT(e.text, HasSubstr("--relam"));
  EXPECT_THAT(e.text, HasSubstr("ferry --help"));
  EXPECT_EQ(exit_of(run({"extra"})).code, 2);
  EXPECT_EQ(exit_of(run({"--config", "a.yaml", "--check-config", "b.yaml"})).code, 2);
}

TEST(Cli, NoSecretFlags) {
  for (const char* flag : {"--password", "--shared-secret", "--static-auth-secret", "--database-url"}) {
    auto e = exit_of(run({flag, "hunter2"}));
    EXPECT_EQ(e.code, 2) << flag;
    EXPECT_THAT(e.text, HasSubstr("secrets are never taken as flags")) << flag;
    EXPECT_THAT(e.text, Not(HasSubstr("hunter2")));
  }
  auto e = exit_of(run({"--password=hunter2"}));
  EXPECT_EQ(e.code, 2);
  EXPECT_THAT(e.text, Not(HasSubstr("hunter2")));
}

TEST(Cli, HelpListsEveryFlagAndTheEnvironment) {
  auto e = exit_of(run({"--help"}));
  EXPECT_EQ(e.code, 0);
  for (const char* flag : {"--config", "--check-config", "--realm", "--listen", "--relay-address", "--external-address",
                           "--port-range", "--log-level", "--log-format", "--http-address", "--workers", "--allow-peer",
                           "--deny-peer", "--version", "--help"})
    EXPECT_THAT(e.text, HasSubstr(flag));
  EXPECT_THAT(e.text, HasSubstr("FERRY_LIMITS_MAX_LIFETIME"));
  EXPECT_THAT(e.text, HasSubstr("FERRY_DATABASE_URL"));
  EXPECT_THAT(e.text, HasSubstr("no flags for secrets"));
  EXPECT_EQ(help_text(), e.text);
}

TEST(Cli, Version) {
  auto e = exit_of(run({"--version"}));
  EXPECT_EQ(e.code, 0);
  EXPECT_EQ(e.text, "ferry " FERRY_VERSION "\n");
}

TEST(Cli, CheckConfigPrintsMaskedEffectiveConfig) {
  TempDir dir;
  auto path = dir.write("ferry.yaml", "realm: check.example\nauth:\n  users:\n    - {name: a, password: topsecret}\n");
  auto e =
      exit_of(run({"--check-config", path, "--workers", "2"}, {{"FERRY_DATABASE_URL", "postgresql://u:dbsecret@h/d"}}));
  EXPECT_EQ(e.code, 0) << e.text;
  EXPECT_THAT(e.text, StartsWith("# " + path + ": OK\n"));
  EXPECT_THAT(e.text, HasSubstr("realm: check.example"));
  EXPECT_THAT(e.text, HasSubstr("workers: 2  # from --workers"));
  EXPECT_THAT(e.text, HasSubstr("postgresql://u:***@h/d"));
  EXPECT_THAT(e.text, Not(HasSubstr("topsecret")));
  EXPECT_THAT(e.text, Not(HasSubstr("dbsecret")));
}

TEST(Config, RealmMustBeUtf8TextWithoutControlCharacters) {
  // Found by fuzz_config: a realm with bytes that are not UTF-8 was accepted, and its dump did not
  // load again (REALM is UTF-8 text, RFC 8489 §14.9).
  // Raw bytes in the file: a stray 0xFF, an overlong '/', a UTF-16 surrogate; then control
  // characters written as YAML escapes.
  for (const char* bad : {"realm: a\xff"
                          "b\n",
                          "realm: \xc0\xaf"
                          "x\n",
                          "realm: \xed\xa0\x80"
                          "x\n",
                          "realm: \"a\\tb\"\n", "software: \"x\\u0001\"\n"}) {
    SCOPED_TRACE(bad);
    auto r = load(bad);
    ASSERT_FALSE(r);
    EXPECT_THAT(error_of(r), HasSubstr("must be UTF-8 text without control characters"));
  }
  auto ok = load("realm: \"r\u00e9alm.example\"\n");
  ASSERT_TRUE(ok) << error_of(ok);
  EXPECT_EQ(ok->realm, "r\u00e9alm.example");
}

TEST(Cli, CheckConfigReportsErrors) {
  TempDir dir;
  auto path = dir.write("ferry.yaml", "realm: x\nlimits:\n  max_lifetime: 7200\n");
  auto e = exit_of(run({"--check-config", path}));
  EXPECT_EQ(e.code, 2);
  EXPECT_EQ(e.text, path + ":3: limits.max_lifetime: must be at most 3600 (got 7200)\n");
  auto missing = exit_of(run({"--check-config", dir.path() + "/nope.yaml"}));
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.text, HasSubstr("does not exist"));
}

TEST(Cli, ExampleChecksClean) {
  auto e = exit_of(run({"--check-config", FERRY_SOURCE_DIR "/examples/ferry.yaml"}));
  EXPECT_EQ(e.code, 0) << e.text;
  EXPECT_THAT(e.text, Not(HasSubstr("change-me")));
}

// ------------------------------------------------------------------------------------------------
// Logging
// ------------------------------------------------------------------------------------------------

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { setup_logging(LogLevel::Info, LogFormat::Text); }
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::sink> sink() { return std::make_shared<spdlog::sinks::ostream_sink_mt>(out_); }
};

TEST_F(LogTest, JsonLines) {
  setup_logging(LogLevel::Info, LogFormat::Json, sink());
  spdlog::info("hello {}", "world");
  spdlog::warn("quote \" backslash \\ newline \n tab \t ctrl \x01 bad \xff utf8 \xc3\xa9");
  spdlog::debug("hidden");
  std::istringstream lines(out_.str());
  std::string line;
  std::vector<nlohmann::json> parsed;
  while (std::getline(lines, line)) parsed.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(parsed.size(), 2u) << out_.str();
  EXPECT_EQ(parsed[0]["level"], "info");
  EXPECT_EQ(parsed[0]["msg"], "hello world");
  EXPECT_THAT(parsed[0]["ts"].get<std::string>(),
              ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z"));
  EXPECT_EQ(parsed[1]["level"], "warn");
  EXPECT_EQ(parsed[1]["msg"], "quote \" backslash \\ newline \n tab \t ctrl \x01 bad \xef\xbf\xbd utf8 \xc3\xa9");
}

TEST_F(LogTest, TextAndRuntimeLevelChange) {
  setup_logging(LogLevel::Warn, LogFormat::Text, sink());
  spdlog::info("before");
  set_log_level(LogLevel::Debug);
  spdlog::debug("after");
  EXPECT_THAT(out_.str(), Not(HasSubstr("before")));
  EXPECT_THAT(out_.str(), HasSubstr("[debug] after"));
  set_log_level(LogLevel::Off);
  spdlog::error("silenced");
  EXPECT_THAT(out_.str(), Not(HasSubstr("silenced")));
}

// ------------------------------------------------------------------------------------------------
// http.* (ICE servers API) and drain.*
// ------------------------------------------------------------------------------------------------

constexpr char kHash[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";  // SHA-256("test")

TEST(ConfigOps, ApiKeysIceUrlsAndDrainFromYaml) {
  auto r =
      load(std::string("http:\n  api_keys:\n    - {name: web, sha256: ") + kHash +
           "}\n  api_requests_per_second: 9\n  ice_urls: [\"stun:h:3478\", \"turns:h:5349?transport=tcp\"]\n"
           "  credential_ttl: 60\n  max_credential_ttl: 120\ndrain:\n  timeout: 7\n  alternate_server: 192.0.2.9\n");
  ASSERT_TRUE(r) << error_of(r);
  ASSERT_EQ(r->http.api_keys.size(), 1u);
  EXPECT_EQ(r->http.api_keys[0].name, "web");
  EXPECT_EQ(r->http.api_keys[0].sha256[0], 0x9f);
  EXPECT_EQ(r->http.api_requests_per_second, 9u);
  EXPECT_EQ(r->http.ice_urls.size(), 2u);
  EXPECT_EQ(r->http.credential_ttl, 60u);
  EXPECT_EQ(r->drain.timeout, 7u);
  ASSERT_TRUE(r->drain.alternate_server);
  EXPECT_EQ(r->drain.alternate_server->to_string(), "192.0.2.9:3478");
  // Shown in --check-config output (a hash is not the key).
  EXPECT_THAT(dump_effective(*r), HasSubstr(kHash));
}

TEST(ConfigOps, ErrorsNameKeyAndLine) {
  EXPECT_EQ(error_of(load("http:\n  api_keys:\n    - {name: web, sha256: abc}\n")),
            "ferry.yaml:3: http.api_keys[0].sha256: must be 64 hex digits, the SHA-256 of the key (got 3 characters)");
  EXPECT_EQ(error_of(load(std::string("http:\n  api_keys:\n    - {name: 'a b', sha256: ") + kHash + "}\n")),
            "ferry.yaml:3: http.api_keys[0].name: name may hold only letters, digits and - _ . @ (got 'a b')");
  EXPECT_EQ(error_of(load("http:\n  api_keys:\n    - {name: web}\n")),
            "ferry.yaml:3: http.api_keys[0]: key 'web' needs sha256 (the SHA-256 of the key, in hex)");
  EXPECT_THAT(error_of(load("http:\n  ice_urls: [\"http://x\"]\n")),
              StartsWith("ferry.yaml:2: http.ice_urls[0]: must be a stun:, stuns:, turn: or turns: URL"));
  EXPECT_EQ(
      error_of(load("http:\n  credential_ttl: 7200\n  max_credential_ttl: 3600\n")),
      "ferry.yaml:2: http.credential_ttl: http.credential_ttl (7200) must not be above http.max_credential_ttl (3600)");
  EXPECT_THAT(error_of(load("drain:\n  alternate_server: nowhere\n")),
              StartsWith("ferry.yaml:2: drain.alternate_server: must be IP[:PORT]"));
  EXPECT_EQ(error_of(load("drain:\n  timeout: -1\n")), "ferry.yaml:2: drain.timeout: must not be negative (got -1)");
}

TEST(ConfigOps, EnvironmentAndFlags) {
  auto r = load("", {{"FERRY_HTTP_API_KEYS", std::string("web:") + kHash + ", app:" + kHash},
                     {"FERRY_HTTP_ICE_URLS", "stun:a:3478,turn:a:3478?transport=udp"},
                     {"FERRY_DRAIN_TIMEOUT", "0"}});
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->http.api_keys.size(), 2u);
  EXPECT_EQ(r->http.api_keys[1].name, "app");
  EXPECT_EQ(r->http.ice_urls[1], "turn:a:3478?transport=udp");
  EXPECT_EQ(r->drain.timeout, 0u);
  EXPECT_THAT(error_of(load("", {{"FERRY_HTTP_API_KEYS", "nohash"}})),
              StartsWith("FERRY_HTTP_API_KEYS: http.api_keys: must be NAME:SHA256HEX"));

  auto parsed = run({"--api-key-hash", std::string("cli:") + kHash, "--ice-url", "turn:x:3478", "--drain-timeout", "12",
                     "--alternate-server", "[2001:db8::1]:3478"});
  const Config& c = config_of(parsed);
  ASSERT_EQ(c.http.api_keys.size(), 1u);
  EXPECT_EQ(c.http.api_keys[0].name, "cli");
  EXPECT_EQ(c.http.ice_urls, std::vector<std::string>{"turn:x:3478"});
  EXPECT_EQ(c.drain.timeout, 12u);
  EXPECT_EQ(c.drain.alternate_server->to_string(), "[2001:db8::1]:3478");
  EXPECT_EQ(c.origins.at("drain.timeout"), "--drain-timeout");
}

// ---- nat_discovery (RFC 5780) -------------------------------------------------------------------

// The nat_discovery plan of a configuration that must load.
std::optional<NatDiscoveryPlan> nat_plan(const std::string& yaml) {
  auto r = load(yaml);
  EXPECT_TRUE(r) << error_of(r);
  std::optional<NatDiscoveryPlan> plan;
  if (r) { EXPECT_EQ(plan_nat_discovery(*r, plan), ""); }
  return plan;
}

TEST(ConfigNatDiscovery, PlansThreeListenersAroundTheUdpOne) {
  auto r = load(
      "listeners: [\"127.0.0.1:3478/udp\", \"127.0.0.1:3478/tcp\", \"[::1]:3478/udp\"]\n"
      "nat_discovery:\n  other_address: 127.0.0.2\n  other_port: 3479\n");
  ASSERT_TRUE(r) << error_of(r);
  std::optional<NatDiscoveryPlan> plan;
  ASSERT_EQ(plan_nat_discovery(*r, plan), "");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->primary.to_string(), "127.0.0.1:3478");
  EXPECT_EQ(plan->alternate.to_string(), "127.0.0.2:3479");
  std::vector<std::string> added;
  for (const auto& l : plan->added) {
    EXPECT_EQ(l.transport, Transport::Udp);
    EXPECT_TRUE(l.nat_alternate);
    added.push_back(l.address.to_string());
  }
  EXPECT_EQ(added, (std::vector<std::string>{"127.0.0.2:3478", "127.0.0.1:3479", "127.0.0.2:3479"}));
  EXPECT_THAT(dump_effective(*r), HasSubstr("other_address: 127.0.0.2  # from ferry.yaml:3"));
  // Not advertised: clients learn the alternate from OTHER-ADDRESS.
  std::vector<ListenerConfig> all = r->listeners;
  all.insert(all.end(), plan->added.begin(), plan->added.end());
  for (const auto& url : derive_ice_urls(all, r->relay.addresses)) EXPECT_THAT(url, Not(HasSubstr("127.0.0.2"))) << url;
}

TEST(ConfigNatDiscovery, ListenersAlreadyConfiguredAreNotAddedTwice) {
  auto plan = nat_plan(
      "listeners: [\"127.0.0.1:3478/udp\", \"127.0.0.2:3478/udp\"]\n"
      "nat_discovery: {other_address: 127.0.0.2, other_port: 3479}\n");
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->added.size(), 2u);
}

TEST(ConfigNatDiscovery, OffByDefault) { EXPECT_FALSE(nat_plan("")); }

TEST(ConfigNatDiscovery, ErrorsNameKeyAndLine) {
  const std::string one_udp = "listeners: [\"127.0.0.1:3478/udp\"]\n";
  // RFC 5780 §6: a second address without a second port (or the reverse) cannot give OTHER-ADDRESS.
  EXPECT_EQ(error_of(load(one_udp + "nat_discovery:\n  other_address: 127.0.0.2\n")),
            "ferry.yaml:3: nat_discovery.other_address: needs nat_discovery.other_port too: RFC 5780 needs a second "
            "IP and a second port");
  EXPECT_EQ(error_of(load(one_udp + "nat_discovery:\n  other_port: 3479\n")),
            "ferry.yaml:3: nat_discovery.other_port: needs nat_discovery.other_address too: RFC 5780 needs a second "
            "IP and a second port");
  EXPECT_EQ(
      error_of(load(one_udp + "nat_discovery:\n  other_address: nowhere\n")),
      "ferry.yaml:3: nat_discovery.other_address: must be an IPv4 or IPv6 address (got 'nowhere'), or \"\" for none");
  EXPECT_EQ(error_of(load(one_udp + "nat_discovery:\n  other_port: 70000\n")),
            "ferry.yaml:3: nat_discovery.other_port: must be at most 65535 (got 70000)");
  EXPECT_EQ(error_of(load(one_udp + "nat_discovery: {other_address: 0.0.0.0, other_port: 3479}\n")),
            "ferry.yaml:2: nat_discovery.other_address: must be a concrete address, not 0.0.0.0");
  // The default listeners are wildcards: RESPONSE-ORIGIN could not name the source.
  EXPECT_EQ(error_of(load("nat_discovery: {other_address: 127.0.0.2, other_port: 3479}\n")),
            "ferry.yaml:1: nat_discovery.other_address: the udp listener 0.0.0.0:3478 it pairs with must be on a "
            "concrete address, not a wildcard");
  EXPECT_EQ(error_of(load(
                "listeners: [\"127.0.0.1:3478/tcp\"]\nnat_discovery: {other_address: 127.0.0.2, other_port: 3479}\n")),
            "ferry.yaml:2: nat_discovery.other_address: needs a udp IPv4 listener on another address and port to pair "
            "with 127.0.0.2:3479");
  EXPECT_EQ(error_of(load("listeners: [\"127.0.0.1:3478/udp\", \"127.0.0.3:3478/udp\"]\n"
                          "nat_discovery: {other_address: 127.0.0.2, other_port: 3479}\n")),
            "ferry.yaml:2: nat_discovery.other_address: pairs with one udp IPv4 listener, but there are several "
            "(127.0.0.1:3478, 127.0.0.3:3478)");
  EXPECT_EQ(error_of(load(one_udp + "nat_discovery: {other_address: '::1', other_port: 3479}\n")),
            "ferry.yaml:2: nat_discovery.other_address: needs a udp IPv6 listener on another address and port to pair "
            "with [::1]:3479");
}

TEST(ConfigNatDiscovery, EnvironmentAndSet) {
  auto r = load("listeners: [\"127.0.0.1:3478/udp\"]\n",
                {{"FERRY_NAT_DISCOVERY_OTHER_ADDRESS", "127.0.0.2"}, {"FERRY_NAT_DISCOVERY_OTHER_PORT", "3479"}});
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_EQ(r->nat_discovery.other_address->ip_string(), "127.0.0.2");
  EXPECT_EQ(r->nat_discovery.other_port, 3479u);
  auto parsed = run({"--listen", "127.0.0.1:3478/udp", "--set", "nat_discovery.other_address=127.0.0.2", "--set",
                     "nat_discovery.other_port=3479"});
  const Config& c = config_of(parsed);
  EXPECT_EQ(c.nat_discovery.other_port, 3479u);
  EXPECT_EQ(c.origins.at("nat_discovery.other_port"), "--set nat_discovery.other_port");
}

// ------------------------------------------------------------------------------------------------
// The schema table
// ------------------------------------------------------------------------------------------------

// docs/CONFIG.md is generated from the table; this fails when either changed without the other.
TEST(ConfigSchema, ReferenceDocMatchesTheTable) {
  std::ifstream in(FERRY_SOURCE_DIR "/docs/CONFIG.md", std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(text.str() == config_reference_markdown())
      << "docs/CONFIG.md is out of date with server/config/config_schema.cpp; regenerate it with\n"
         "  build/release/server/ferry --config-reference > docs/CONFIG.md";
}

TEST(ConfigSchema, EveryRowIsComplete) {
  std::set<std::string> keys;
  for (const auto& k : config_schema()) {
    EXPECT_TRUE(keys.insert(k.key).second) << "twice: " << k.key;
    EXPECT_FALSE(k.type.empty()) << k.key;
    EXPECT_FALSE(k.doc.empty()) << k.key;
    EXPECT_EQ(k.doc.find('\n'), std::string::npos) << k.key << ": the doc is one line";
    EXPECT_LE(std::count(k.key.begin(), k.key.end(), '.'), 1) << k.key;
    if (k.shape == KeyShape::Scalar) {
      EXPECT_TRUE(k.set && k.get) << k.key;
    } else {
      EXPECT_TRUE(k.parse_yaml && k.dump_list) << k.key;
    }
  }
}

// The defaults Config() applies are the table's, and each reads back as its own default.
TEST(ConfigSchema, DefaultsComeFromTheTable) {
  const Config c;
  for (const auto& k : config_schema()) {
    if (k.shape == KeyShape::Scalar) { EXPECT_EQ(k.get(c), k.default_value) << k.key; }
  }
  EXPECT_EQ(c.limits.max_lifetime, 3600u);
  EXPECT_EQ(c.relay.port_min, 49152u);
  EXPECT_TRUE(c.relay.tcp_allocations);
  EXPECT_EQ(c.log.level, LogLevel::Info);
  EXPECT_EQ(c.http.address->to_string(), "127.0.0.1:9641");
  EXPECT_EQ(c.software, "ferry/" FERRY_VERSION);
  EXPECT_TRUE(c.origins.empty());
}

// Every key of the table is read from YAML, and a typo of any of them gets a suggestion.
TEST(ConfigSchema, UnknownKeysAreSuggestedFromTheTable) {
  EXPECT_EQ(error_of(load("database:\n  pool_sise: 3\n")),
            "ferry.yaml:2: unknown key 'pool_sise' in database (did you mean 'pool_size'?)");
  EXPECT_EQ(error_of(load("nat_discovery:\n  other_prt: 3\n")),
            "ferry.yaml:2: unknown key 'other_prt' in nat_discovery (did you mean 'other_port'?)");
  EXPECT_EQ(error_of(load("http:\n  ice_url: []\n")),
            "ferry.yaml:2: unknown key 'ice_url' in http (did you mean 'ice_urls'?)");
  EXPECT_EQ(error_of(load("listener: []\n")), "ferry.yaml:1: unknown key 'listener' (did you mean 'listeners'?)");
}

TEST(ConfigSchema, SecretsAreFlaggedAndMasked) {
  for (const char* key : {"auth.users", "auth.shared_secrets", "database.url"}) {
    const ConfigKey* k = find_config_key(key);
    ASSERT_NE(k, nullptr) << key;
    EXPECT_NE(k->secret, Secrecy::None) << key;
  }
  EXPECT_EQ(find_config_key("realm")->secret, Secrecy::None);
  EXPECT_THAT(config_reference_markdown(), HasSubstr("| `auth.users` | list of users, secret |"));
}

TEST(Cli, ConfigReferenceIsHiddenAndPrintsTheDoc) {
  const auto result = run({"--config-reference"});
  const auto& e = exit_of(result);
  EXPECT_EQ(e.code, 0);
  EXPECT_EQ(e.text, config_reference_markdown());
  EXPECT_THAT(help_text(), Not(HasSubstr("--config-reference")));
}

// ------------------------------------------------------------------------------------------------
// PROXY protocol on listeners
// ------------------------------------------------------------------------------------------------

TEST(ConfigListeners, ProxyProtocolAndTrustedProxies) {
  auto r = load(
      "listeners:\n"
      "  - {address: 0.0.0.0, port: 3478, transport: tcp, proxy_protocol: v2, trusted_proxies: [10.0.0.0/8, ::1]}\n"
      "  - {address: 0.0.0.0, port: 3479, transport: tls, proxy_protocol: v1, trusted_proxies: \"192.0.2.1, "
      "192.0.2.2\"}\n"
      "  - {address: 0.0.0.0, port: 3478, transport: udp}\n"
      "tls: {cert: /nonexistent.crt, key: /nonexistent.key}\n");
  ASSERT_TRUE(r) << error_of(r);
  const auto& ls = r->listeners;
  ASSERT_EQ(ls.size(), 3u);
  EXPECT_EQ(ls[0].proxy_protocol, ProxyProtocol::V2);
  EXPECT_EQ(ls[0].trusted_proxies, (std::vector<std::string>{"10.0.0.0/8", "::1"}));
  EXPECT_EQ(ls[1].proxy_protocol, ProxyProtocol::V1);
  EXPECT_EQ(ls[1].trusted_proxies, (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(ls[2].proxy_protocol, ProxyProtocol::Off);
  // The dump shows both keys and loads back to the same listeners.
  const auto dump = dump_effective(*r);
  EXPECT_THAT(dump, HasSubstr("proxy_protocol: v2"));
  auto again = load(dump);
  ASSERT_TRUE(again) << error_of(again) << "\n" << dump;
  EXPECT_EQ(again->listeners, ls);
}

TEST(ConfigListeners, ProxyProtocolErrorsNameTheKey) {
  EXPECT_EQ(error_of(load("listeners:\n  - {address: 0.0.0.0, transport: tcp, proxy_protocol: v3}\n")),
            "ferry.yaml:2: listeners[0].proxy_protocol: must be one of off, v1, v2 (got 'v3')");
  EXPECT_EQ(error_of(load("listeners:\n  - {address: 0.0.0.0, transport: udp, proxy_protocol: v2, "
                          "trusted_proxies: [10.0.0.1]}\n")),
            "ferry.yaml:2: listeners[0].proxy_protocol: works on tcp and tls listeners only");
  EXPECT_EQ(error_of(load("listeners:\n  - {address: 0.0.0.0, transport: tcp, proxy_protocol: v2}\n")),
            "ferry.yaml:2: listeners[0].trusted_proxies: needs the addresses of the proxies allowed to send the "
            "header (CIDR list)");
  EXPECT_EQ(error_of(load("listeners:\n  - {address: 0.0.0.0, transport: tcp, trusted_proxies: [10.0.0.1]}\n")),
            "ferry.yaml:2: listeners[0].trusted_proxies: only means something with proxy_protocol v1 or v2");
  EXPECT_EQ(error_of(load("listeners:\n  - {address: 0.0.0.0, transport: tcp, proxy_protocol: v1, "
                          "trusted_proxies: [10.0.0.0/40]}\n")),
            "ferry.yaml:2: listeners[0].trusted_proxies[0]: prefix length must be 0-32 (got '10.0.0.0/40')");
}
}  // namespace
}  // namespace ferry::server

// RFC 7635 AS-RS keys: YAML and FERRY_* forms, the errors naming the key, the masked dump.
namespace ferry::server {
namespace {
TEST(ConfigOAuth, KeysParseMaskAndRefuseBadOnes) {
  TempDir dir;
  const std::string k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // bytes 0..31
  const std::string key_file = dir.write("as.key", "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n");
  auto r = load_config_string(
      "auth:\n  oauth_server_name: turn.example.org\n  oauth_keys:\n"
      "    - {kid: k1, key: \"" +
          k1 +
          "\", lifetime_max: 3600, as_url: https://as}\n"
          "    - {kid: k2, key_file: \"" +
          key_file + "\"}\n",
      "ferry.yaml", {});
  ASSERT_TRUE(r) << error_of(r);
  ASSERT_EQ(r->auth.oauth_keys.size(), 2u);
  EXPECT_EQ(r->auth.oauth_keys[0].key[31], 31);
  EXPECT_EQ(r->auth.oauth_keys[0].lifetime_max, 3600u);
  EXPECT_EQ(r->auth.oauth_keys[1].key[0], 32);
  EXPECT_TRUE(r->oauth_enabled());
  EXPECT_TRUE(r->turn_enabled());
  EXPECT_EQ(r->oauth_server_name(), "turn.example.org");
  auto dump = dump_effective(*r);
  EXPECT_THAT(dump, Not(HasSubstr(k1))) << dump;
  EXPECT_THAT(dump, HasSubstr("kid: k1"));

  EXPECT_THAT(error_of(load("auth:\n  oauth_keys:\n    - {kid: k1, key: \"aGVsbG8=\"}\n")),
              HasSubstr("auth.oauth_keys[0].key: must be 32 bytes"));
  EXPECT_THAT(error_of(load("auth:\n  oauth_keys:\n    - {key: \"" + k1 + "\"}\n")), HasSubstr("needs a kid"));
  EXPECT_THAT(error_of(load("auth:\n  oauth_keys:\n    - {kid: a, key: \"" + k1 + "\"}\n    - {kid: a, key: \"" + k1 +
                            "\"}\n")),
              HasSubstr("duplicate kid"));
  EXPECT_THAT(error_of(load("auth:\n  oauth: true\n")), HasSubstr("auth.oauth: needs auth.oauth_keys or database.url"));

  auto e = load("realm: r\n", Environment{{"FERRY_AUTH_OAUTH_KEYS", "k9:" + k1}});
  ASSERT_TRUE(e) << error_of(e);
  ASSERT_EQ(e->auth.oauth_keys.size(), 1u);
  EXPECT_EQ(e->auth.oauth_keys[0].kid, "k9");
  EXPECT_EQ(e->oauth_server_name(), "r");  // the realm by default
}
}  // namespace
}  // namespace ferry::server
