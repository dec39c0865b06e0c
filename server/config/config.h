// ferry's configuration: one schema, filled in layers.
//
//   built-in defaults  <  YAML file  <  FERRY_* environment variables  <  command-line flags
//
// The defaults alone run a STUN server on 3478 udp+tcp (IPv4 and IPv6); TURN needs credentials
// (auth.users or auth.shared_secrets). Every error names the key and where it came from
// ("ferry.yaml:12: limits.max_lifetime: must be at most 3600 (got 7200)"). Secrets — passwords,
// long-term keys, shared secrets, the database URL's password — come from the file, from files
// the file points at (*_file keys) or from FERRY_* variables, never from flags, and
// dump_effective() masks them.
//
// The keys, their defaults, types, docs and how each is read and dumped are one table,
// config_schema.cpp (docs/CONFIG.md is generated from it). Field defaults below are therefore the
// zero value; Config() fills in the table's. To add a key: a field here, a row in that table, a
// commented line in examples/ferry.yaml, `ferry --config-reference > docs/CONFIG.md`, and a test.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/result.h"
#include "stun/transport_address.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "dev"
#endif

namespace ferry::server {

enum class Transport { Udp, Tcp, Tls, Dtls };
std::string_view to_string(Transport t);
std::optional<Transport> parse_transport(std::string_view text);  // "udp", "tcp", "tls", "dtls"

enum class LogLevel { Trace, Debug, Info, Warn, Error, Off };
std::string_view to_string(LogLevel l);
std::optional<LogLevel> parse_log_level(std::string_view text);  // also accepts "warning"

// data_path: where established UDP ChannelData is relayed. user: ferry's loops (the default);
// kernel: a BPF program at TC ingress (server/fastpath/), refused at start when it cannot load;
// auto: the kernel when it loads, else user space with a log line saying why.
enum class DataPath : uint8_t { User, Kernel, Auto };
std::string_view to_string(DataPath d);
std::optional<DataPath> parse_data_path(std::string_view text);

enum class LogFormat { Text, Json };
std::string_view to_string(LogFormat f);
std::optional<LogFormat> parse_log_format(std::string_view text);

// PROXY protocol (HAProxy's specification) on a TCP or TLS listener: every connection must start
// with a header of this version from one of the listener's trusted_proxies.
enum class ProxyProtocol : uint8_t { Off, V1, V2 };
std::string_view to_string(ProxyProtocol p);

struct ListenerConfig {
  stun::TransportAddress address;  // IP and port to bind
  Transport transport = Transport::Udp;
  bool nat_alternate = false;  // added for nat_discovery (RFC 5780): not advertised in ICE URLs
  ProxyProtocol proxy_protocol = ProxyProtocol::Off;
  // Addresses or CIDR strings allowed to send the header, syntax-checked only (turn::Cidr parses them).
  std::vector<std::string> trusted_proxies;
  friend bool operator==(const ListenerConfig&, const ListenerConfig&) = default;
};

struct RelayAddressConfig {
  stun::TransportAddress address;                  // IP relayed sockets bind to (port 0)
  std::optional<stun::TransportAddress> external;  // advertised instead, behind a 1:1 NAT (port 0)
  friend bool operator==(const RelayAddressConfig&, const RelayAddressConfig&) = default;
};

struct RelayConfig {
  std::vector<RelayAddressConfig> addresses;  // default: 0.0.0.0 and ::
  uint16_t port_min{};
  uint16_t port_max{};
  // ChannelBind accepts only RFC 8656's 0x4000-0x4FFF when true; when false (the default) also the
  // RFC 5766 range up to 0x7FFF, which libwebrtc and coturn's clients still pick from.
  bool strict_channel_numbers{};
  // RFC 6062 TCP allocations (REQUESTED-TRANSPORT TCP from TCP/TLS clients); false answers 442.
  bool tcp_allocations{};
};

struct UserConfig {
  std::string name;
  std::string password;                        // set from `password` or read from `password_file`
  std::string password_file;                   // where `password` was read from, if it was
  std::optional<std::array<uint8_t, 16>> key;  // `key`: MD5(name:realm:password), instead of a password
};

struct SharedSecretConfig {
  std::string secret;       // for TURN REST API style credentials
  std::string secret_file;  // where `secret` was read from, if it was
};

// An RFC 7635 AS-RS key: tokens sealed with it (A256GCM) under this key id are accepted.
struct OAuthKeyConfig {
  std::string kid;
  std::array<uint8_t, 32> key{};  // a secret
  std::string key_file;           // where `key` (base64) was read from, if it was
  uint32_t lifetime_max{};        // seconds; longer-lived tokens are refused. 0 = no cap
  std::string as_url;             // the authorization server, informational
  friend bool operator==(const OAuthKeyConfig&, const OAuthKeyConfig&) = default;
};

struct AuthConfig {
  uint32_t nonce_lifetime{};  // seconds
  bool userhash{};            // accept USERHASH (RFC 8489 §14.4)
  bool strict_expiry{};       // allocations of TURN REST credentials end when the credential expires
  std::vector<UserConfig> users;
  std::vector<SharedSecretConfig> shared_secrets;
  // RFC 7635 third-party authorization: keys from here (and PostgreSQL); the server name in
  // THIRD-PARTY-AUTHORIZATION and the tokens' AAD ("" = the realm); accepted clock skew.
  std::vector<OAuthKeyConfig> oauth_keys;
  std::string oauth_server_name;
  uint32_t oauth_clock_skew{};
  bool oauth_enabled{};  // auth.oauth: also true when oauth_keys is not empty
};

struct TurnConfig {
  bool mobility{};  // RFC 8016 MOBILITY-TICKET
};

struct PeersConfig {
  // CIDR strings ("10.0.0.0/8", "::1", "fe80::/10"), syntax-checked only; turn/peer_policy parses them.
  std::vector<std::string> allow;
  std::vector<std::string> deny;
};

struct LimitsConfig {
  uint32_t max_allocations{};           // 0 = unlimited
  uint32_t max_allocations_per_user{};  // 0 = unlimited
  uint32_t max_permissions_per_allocation{};
  uint32_t max_channels_per_allocation{};
  uint64_t bandwidth_per_allocation{};    // bytes/s, 0 = unlimited
  uint32_t default_lifetime{};            // seconds
  uint32_t max_lifetime{};                // seconds, at most 3600
  uint32_t unauth_requests_per_second{};  // per source IP, 0 = unlimited
  // TCP and TLS connections and DTLS sessions (issue 5: back-pressure and limits).
  uint32_t max_connections{};          // in total, 0 = unlimited
  uint32_t max_connections_per_ip{};   // from one source IP, 0 = unlimited
  uint32_t handshake_timeout{};        // seconds to finish TLS/DTLS and send a first message
  uint32_t connection_idle_timeout{};  // seconds of silence before a connection without allocation closes
  uint64_t connection_write_budget{};  // bytes queued per connection before relayed data is dropped
};

struct TlsConfig {
  std::string cert;  // PEM file paths; both needed when a tls/dtls listener exists
  std::string key;
  std::string ciphers;         // TLS 1.2 / DTLS 1.2 cipher list; "" = the built-in default
  std::string ciphersuites;    // TLS 1.3 suites; "" = the built-in default
  std::string min_version{};   // "1.2" or "1.3" (TLS over TCP; DTLS is always 1.2)
  uint32_t reload_interval{};  // seconds between checks of the files for changes; 0 = SIGHUP only
};

struct LogConfig {
  LogLevel level{};
  LogFormat format{};
};

// An API key for GET /v1/ice-servers, kept only as SHA-256 of the key (the key itself is shown
// once, to whoever made it). `name` becomes the user part of the credentials it gets.
struct ApiKeyConfig {
  std::string name;
  std::array<uint8_t, 32> sha256{};
  friend bool operator==(const ApiKeyConfig&, const ApiKeyConfig&) = default;
};

struct HttpConfig {
  // Metrics/health/ICE-servers endpoint. nullopt = disabled (`address: ""`).
  std::optional<stun::TransportAddress> address{};
  std::vector<ApiKeyConfig> api_keys;  // none: /v1/ice-servers refuses every request (401)
  uint32_t api_requests_per_second{};  // per key, token bucket; 0 = unlimited
  // stun:/stuns:/turn:/turns: URLs handed out; empty = derived from listeners and external addresses.
  std::vector<std::string> ice_urls;
  uint32_t credential_ttl{};      // seconds, when the request names no ?ttl=
  uint32_t max_credential_ttl{};  // seconds, the most a ?ttl= gets
  uint32_t ice_nodes{};           // with a database: URLs of up to this many live active nodes
};

// SIGTERM: stop taking allocations, let the existing ones run, exit when they are gone.
struct DrainConfig {
  uint32_t timeout{};  // seconds to wait for allocations to end; 0 = exit at once
  // Where new Allocates are sent while draining (300 Try Alternate); none: 508.
  std::optional<stun::TransportAddress> alternate_server;
};

// RFC 5780 NAT behaviour discovery. With both keys set, the udp listener A1:P1 of other_address's
// family is joined by udp listeners on A2:P1, A1:P2 and A2:P2 (A2 = other_address, P2 =
// other_port); Binding answers on those four carry RESPONSE-ORIGIN and OTHER-ADDRESS and honour
// CHANGE-REQUEST. One of the two alone is refused: a server that cannot use the same ports on two
// addresses must not send OTHER-ADDRESS (RFC 5780 §6), so it would be the same as neither.
struct NatDiscoveryConfig {
  std::optional<stun::TransportAddress> other_address;  // A2 (port 0); none = off
  uint16_t other_port{};                                // P2; 0 = off
  bool enabled() const { return other_address.has_value() || other_port != 0; }
};

// What nat_discovery adds to a valid configuration: the primary listener A1:P1, the alternate
// A2:P2, and the udp listeners among A2:P1, A1:P2, A2:P2 not configured already.
struct NatDiscoveryPlan {
  stun::TransportAddress primary;
  stun::TransportAddress alternate;
  std::vector<ListenerConfig> added;
};

struct DatabaseConfig {
  std::string url;                // libpq connection string/URI; empty = no database. Secret (its password).
  std::string url_file;           // where `url` was read from, if it was
  uint32_t pool_size{};           // query connections per worker (each worker LISTENs on one more)
  uint32_t cache_ttl{};           // seconds a looked-up user is served without asking again
  uint32_t negative_cache_ttl{};  // seconds an unknown username is remembered
  uint32_t max_stale{};           // seconds a cached user keeps working while the database is down
  uint32_t secrets_refresh{};     // seconds between reloads of shared secrets (their expiry)
};

// This instance in a fleet (several ferry on one database): the id its row in the node registry
// has, and how often it upserts that row (db/migrations/0003_nodes.sql).
struct NodeConfig {
  std::string id; /* "" = derived */
  uint32_t heartbeat_interval{};
};

// Usage records (table usage_records, written when a database is configured) and the per-user
// metrics on /metrics.
struct UsageConfig {
  uint32_t interval{};    // seconds between interim records of a live allocation
  uint32_t queue_size{};  // records buffered per worker (database slow or down); beyond: dropped
  uint32_t top_users{};   // users on /metrics by relayed bytes (label cardinality bound); 0 = none
};

struct Config {
  std::string realm{};
  std::string software{};
  uint32_t workers{};  // 0 = one per CPU core
  DataPath data_path{};
  std::vector<ListenerConfig> listeners;  // default: 0.0.0.0 and :: on 3478, udp and tcp
  RelayConfig relay;
  AuthConfig auth;
  TurnConfig turn;
  PeersConfig peers;
  LimitsConfig limits;
  TlsConfig tls;
  LogConfig log;
  HttpConfig http;
  DrainConfig drain;
  DatabaseConfig database;
  NatDiscoveryConfig nat_discovery;
  NodeConfig node;
  UsageConfig usage;

  // Where each non-default value came from, by dotted key: "ferry.yaml:12", "FERRY_REALM", "--realm".
  std::map<std::string, std::string> origins;

  Config();  // the embedded defaults: the schema table's (config_schema.cpp)
  bool turn_enabled() const {
    return !auth.users.empty() || !auth.shared_secrets.empty() || !auth.oauth_keys.empty() || !database.url.empty();
  }
  // Third-party authorization is offered: keys configured, or auth.oauth (keys in PostgreSQL).
  bool oauth_enabled() const { return auth.oauth_enabled || !auth.oauth_keys.empty(); }
  const std::string& oauth_server_name() const {
    return auth.oauth_server_name.empty() ? realm : auth.oauth_server_name;
  }
};

struct ConfigError {
  std::string message;  // complete, ready to print: "ferry.yaml:12: limits.max_lifetime: must be ..."
};

// Either a Config or the first error found.
using ConfigResult = Result<Config, ConfigError>;

// The process environment is passed in, never read behind the caller's back, so tests need not
// touch the real one. Only FERRY_* entries matter.
using Environment = std::map<std::string, std::string>;
Environment process_environment();  // the FERRY_* variables of this process

// --- Layers. Each checks the keys it sets; validate_config() checks how keys relate. ---

// Parses YAML over `base` (defaults if omitted). `source_name` prefixes errors ("ferry.yaml:4: ...");
// relative *_file and tls paths resolve against `base_dir` (the file's directory, "" = as given).
ConfigResult parse_config_string(std::string_view yaml, std::string_view source_name, const Config& base = Config(),
                                 std::string_view base_dir = "");
ConfigResult parse_config_file(const std::string& path, const Config& base = Config());
// Applies FERRY_* variables (FERRY_REALM, FERRY_LIMITS_MAX_LIFETIME, FERRY_DATABASE_URL, ...).
// Lists peers.allow, peers.deny and auth.shared_secrets take comma-separated values.
std::optional<ConfigError> apply_environment(Config& config, const Environment& env);
// FERRY_* variables that look like typos of known ones ("FERRY_RELM ... did you mean FERRY_REALM?").
std::vector<std::string> environment_warnings(const Environment& env);
// Cross-key checks (port_min <= port_max, default_lifetime <= max_lifetime, TLS files for tls/dtls
// listeners, ...). Names the key and where its value came from.
std::optional<ConfigError> validate_config(const Config& config);

// --- All layers but flags: defaults < file < env, then validate_config(). ---
ConfigResult load_config_string(std::string_view yaml, std::string_view source_name, const Environment& env = {});
ConfigResult load_config_file(const std::string& path, const Environment& env = {});

// Sets one scalar key from text, as FERRY_* variables and flags do ("limits.max_lifetime", "7200").
// Returns an error detail ("must be at most 3600 (got 7200)") or "". Records `origin` on success.
std::string set_config_value(Config& config, std::string_view dotted_key, std::string_view text,
                             std::string_view origin);

// Every FERRY_* variable the config understands, with its dotted key, in schema order.
std::vector<std::pair<std::string, std::string>> environment_variables();
std::string env_var_for(std::string_view dotted_key);  // "limits.max_lifetime" -> "FERRY_LIMITS_MAX_LIFETIME"

// The listeners nat_discovery needs, or nothing when it is off. Returns an error detail (for the
// key nat_discovery.other_address) or "".
std::string plan_nat_discovery(const Config& config, std::optional<NatDiscoveryPlan>& out);

// "IP[:PORT][/udp|tcp|tls|dtls]" ("0.0.0.0:3478/udp", "[::]:5349/tls"), as --listen and
// FERRY_LISTENERS take it: no transport = udp and tcp; no port = 3478 (5349 for tls/dtls).
// Appends to `out`; returns an error detail or "".
std::string parse_listener_spec(std::string_view text, std::vector<ListenerConfig>& out);
// "IP[=EXTERNAL_IP]" as FERRY_RELAY_ADDRESSES takes it. Appends to `out`; returns an error detail or "".
std::string parse_relay_spec(std::string_view text, std::vector<RelayAddressConfig>& out);
// Checks "address[/prefix]"; returns an error detail or "" when fine.
std::string check_cidr(std::string_view text);
// "NAME:SHA256HEX" as FERRY_HTTP_API_KEYS and --api-key-hash take it. Appends; error detail or "".
std::string parse_api_key_spec(std::string_view text, std::vector<ApiKeyConfig>& out);
// FERRY_AUTH_OAUTH_KEYS items: "KID:BASE64KEY" (32 bytes once decoded).
std::string parse_oauth_key_spec(std::string_view text, std::vector<OAuthKeyConfig>& out);
// A stun:, stuns:, turn: or turns: URL (RFC 7064, RFC 7065). Error detail or "".
std::string check_ice_url(std::string_view text);

// YAML of the effective config, secrets shown as "***", each value not from the defaults
// followed by a comment saying where it came from.
std::string dump_effective(const Config& config);

// docs/CONFIG.md: every key with its type, default, whether SIGHUP applies it, and a line of docs.
std::string config_reference_markdown();

}  // namespace ferry::server
