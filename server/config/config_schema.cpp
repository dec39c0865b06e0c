// The schema table: every configuration key, one row each, in dump order. A row says what the
// key is (type, default, a line of docs, secret, reloadable on SIGHUP) and how it is read and
// written; YAML, FERRY_* variables, --set, the dump, the unknown-key suggestions and
// docs/CONFIG.md all come from here.
//
// To add a key: a field in config.h, a row here (in the place it should be dumped), its use, and
// `ferry --config-reference > docs/CONFIG.md`.
#include "server/config/config_schema.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "server/config/config_lists.h"
#include "server/config/config_values.h"
#include "server/config/node_id.h"

namespace ferry::server {

using namespace detail;

namespace {

// `field` is a generic lambda returning a reference to the member: FIELD(limits.max_lifetime).
#define FIELD(member) \
  [](auto& c) -> auto& { return c.member; }

template <class Field>
ConfigKey uint_key(std::string key, uint64_t min, uint64_t max, std::string def, bool reloadable, std::string doc,
                   Field field) {
  ConfigKey k;
  k.key = std::move(key);
  using T = std::remove_reference_t<decltype(field(std::declval<Config&>()))>;
  k.type = max == std::numeric_limits<T>::max() ? "integer >= " + std::to_string(min)
                                                : "integer " + std::to_string(min) + "-" + std::to_string(max);
  k.default_value = std::move(def);
  k.reloadable = reloadable;
  k.doc = std::move(doc);
  k.set = [=](Config& c, std::string_view t, std::string_view) { return parse_uint(field(c), t, min, max); };
  k.get = [=](const Config& c) { return std::to_string(field(c)); };
  return k;
}

template <class Field>
ConfigKey bool_key(std::string key, std::string def, bool reloadable, std::string doc, Field field) {
  ConfigKey k;
  k.key = std::move(key);
  k.type = "boolean";
  k.default_value = std::move(def);
  k.reloadable = reloadable;
  k.doc = std::move(doc);
  k.set = [=](Config& c, std::string_view t, std::string_view) { return parse_bool(field(c), t); };
  k.get = [=](const Config& c) { return std::string(field(c) ? "true" : "false"); };
  return k;
}

ConfigKey scalar_key(std::string key, std::string type, std::string def, bool reloadable, std::string doc,
                     decltype(ConfigKey::set) set, decltype(ConfigKey::get) get) {
  ConfigKey k;
  k.key = std::move(key);
  k.type = std::move(type);
  k.default_value = std::move(def);
  k.reloadable = reloadable;
  k.doc = std::move(doc);
  k.set = std::move(set);
  k.get = std::move(get);
  return k;
}

// set_items for a list whose items are parsed one by one into a vector: `parse_one(item, out)`
// returns an error detail or "", and the field is replaced only when every item parsed.
template <class Field, class ParseOne>
decltype(ConfigKey::set_items) items_into(Field field, ParseOne parse_one) {
  return [=](Config& c, const std::vector<std::string>& items) -> std::string {
    std::remove_reference_t<decltype(field(c))> out;
    for (const auto& i : items)
      if (auto d = parse_one(i, out); !d.empty()) return d;
    field(c) = std::move(out);
    return "";
  };
}

ConfigKey list_key(std::string key, std::string type, std::string def, bool reloadable, std::string doc,
                   decltype(ConfigKey::parse_yaml) parse_yaml, decltype(ConfigKey::set_items) set_items,
                   decltype(ConfigKey::dump_list) dump_list) {
  ConfigKey k;
  k.key = std::move(key);
  k.shape = KeyShape::List;
  k.type = std::move(type);
  k.default_value = std::move(def);
  k.reloadable = reloadable;
  k.doc = std::move(doc);
  k.parse_yaml = std::move(parse_yaml);
  k.set_items = std::move(set_items);
  k.dump_list = std::move(dump_list);
  return k;
}

// A list of checked strings (peers.allow, peers.deny, http.ice_urls), alike from YAML and FERRY_*.
template <class Field>
ConfigKey strings_key(std::string key, std::string type, bool reloadable, std::string doc,
                      std::string (*check)(std::string_view), Field field) {
  const std::string path = key;
  return list_key(
      std::move(key), std::move(type), "", reloadable, std::move(doc),
      [=](YamlReader& r, const YAML::Node& seq, const YAML::Mark&) {
    return parse_string_list_yaml(r, seq, path, check, field(r.config()));
      },
      [=](Config& c, const std::vector<std::string>& items) -> std::string {
        for (const auto& i : items)
          if (auto d = check(i); !d.empty()) return d;
        field(c) = items;
        return "";
      },
      [=](YAML::Emitter& out, const Config& c) { dump_strings(out, field(c)); });
}

std::string address_text(const std::optional<stun::TransportAddress>& a) { return a ? a->to_string() : std::string(); }

std::vector<ConfigKey> build_schema() {
  constexpr uint64_t u32 = std::numeric_limits<uint32_t>::max();
  constexpr uint64_t u64 = std::numeric_limits<uint64_t>::max();
  constexpr bool kReload = true, kRestart = false;
  std::vector<ConfigKey> t;

  t.push_back(scalar_key(
      "realm", "string", "ferry", kRestart,
      "Realm sent in 401 responses and used in long-term credentials, usually your domain.",
      [](Config& c, std::string_view v, std::string_view) { return parse_stun_text(c.realm, v, false); },
      [](const Config& c) { return c.realm; }));
  t.push_back(scalar_key(
      "software", "string", "ferry/" FERRY_VERSION, kRestart, "SOFTWARE attribute in responses; \"\" leaves it out.",
      [](Config& c, std::string_view v, std::string_view) { return parse_stun_text(c.software, v, true); },
      [](const Config& c) { return c.software; }));
  t.back().doc_default = "ferry/<version>";
  t.push_back(uint_key("workers", 0, 1024, "0", kRestart, "Worker threads; 0 = one per CPU core.", FIELD(workers)));
  t.push_back(scalar_key(
      "data_path", "user|kernel|auto", "user", kRestart,
      "Where established UDP ChannelData is relayed: user (ferry's loops), kernel (a BPF program at TC ingress "
      "relays IPv4 UDP channels; needs CAP_BPF, CAP_NET_ADMIN, Linux >= 6.3 with BTF and a build with libbpf; refused "
      "when unavailable) or auto (the kernel when available, else user with a log line).",
      [](Config& c, std::string_view v, std::string_view) -> std::string {
        auto d = parse_data_path(v);
        if (!d) return "must be user, kernel or auto (got " + quote(v) + ")";
        c.data_path = *d;
        return "";
      },
      [](const Config& c) { return std::string(to_string(c.data_path)); }));
  t.push_back(list_key(
      "listeners", "list of listeners", "0.0.0.0:3478/udp,[::]:3478/udp,0.0.0.0:3478/tcp,[::]:3478/tcp", kRestart,
      "Sockets to listen on: {address, port, transport: udp|tcp|tls|dtls} or \"IP:PORT/TRANSPORT\"; tcp and "
      "tls mappings may add proxy_protocol: off|v1|v2 and trusted_proxies: [CIDR...].",
      parse_listeners_yaml, items_into(FIELD(listeners), parse_listener_spec), dump_listeners));

  t.push_back(
      list_key("relay.addresses", "list of relay addresses", "0.0.0.0,::", kRestart,
               "Local IPs relayed sockets bind to, each with an optional external IP advertised instead (1:1 NAT).",
               parse_relay_addresses_yaml, items_into(FIELD(relay.addresses), parse_relay_spec), dump_relay_addresses));
  t.push_back(uint_key("relay.port_min", 1, 65535, "49152", kRestart, "Lowest port relayed sockets use.",
                       FIELD(relay.port_min)));
  t.push_back(uint_key("relay.port_max", 1, 65535, "65535", kRestart, "Highest port relayed sockets use.",
                       FIELD(relay.port_max)));
  t.push_back(
      bool_key("relay.strict_channel_numbers", "false", kRestart,
               "true: ChannelBind accepts only RFC 8656's 0x4000-0x4FFF; false: also RFC 5766's range up to 0x7FFF.",
               FIELD(relay.strict_channel_numbers)));
  t.push_back(bool_key("relay.tcp_allocations", "true", kReload,
                       "RFC 6062 TCP allocations for TCP/TLS clients; false answers them 442.",
                       FIELD(relay.tcp_allocations)));

  t.push_back(bool_key("turn.mobility", "false", kReload,
                       "RFC 8016 mobility: an Allocate with MOBILITY-TICKET gets a ticket, and a Refresh with it from "
                       "the client's new address or port (UDP, DTLS) keeps the allocation; false answers 405.",
                       FIELD(turn.mobility)));

  t.push_back(uint_key("auth.nonce_lifetime", 1, 86400, "600", kRestart,
                       "Seconds a NONCE stays valid before clients get 438 Stale Nonce.", FIELD(auth.nonce_lifetime)));
  t.push_back(bool_key("auth.userhash", "false", kRestart, "Accept USERHASH (RFC 8489 §14.4).", FIELD(auth.userhash)));
  t.push_back(bool_key("auth.strict_expiry", "false", kReload,
                       "true: an allocation made with a TURN REST credential ends when the credential's timestamp "
                       "expires; Allocate and Refresh grant no lifetime past it.",
                       FIELD(auth.strict_expiry)));
  t.push_back(list_key("auth.users", "list of users", "", kReload,
                       "Long-term credential users: {name, and one of password, key (MD5 hex), password_file}.",
                       parse_users_yaml, nullptr, dump_users));
  t.back().secret = Secrecy::Masked;
  t.push_back(list_key(
      "auth.shared_secrets", "list of secrets", "", kReload,
      "Secrets for TURN REST API credentials: a string, {secret: ...} or {secret_file: path}.",
      parse_shared_secrets_yaml,
      [](Config& c, const std::vector<std::string>& items) -> std::string {
        c.auth.shared_secrets.clear();
        for (const auto& i : items) c.auth.shared_secrets.push_back({i, ""});
        return "";
      },
      dump_shared_secrets));
  t.back().secret = Secrecy::Masked;
  t.push_back(list_key("auth.oauth_keys", "list of AS-RS keys", "", kReload,
                       "RFC 7635 third-party authorization: {kid, key (base64, 32 bytes) or key_file, lifetime_max, "
                       "as_url}; tokens sealed (A256GCM) with a key are accepted under its kid.",
                       parse_oauth_keys_yaml, items_into(FIELD(auth.oauth_keys), parse_oauth_key_spec),
                       dump_oauth_keys));
  t.back().secret = Secrecy::Masked;
  t.push_back(bool_key("auth.oauth", "false", kRestart,
                       "Offer RFC 7635 third-party authorization with keys from PostgreSQL only (implied by "
                       "auth.oauth_keys).",
                       FIELD(auth.oauth_enabled)));
  t.push_back(scalar_key(
      "auth.oauth_server_name", "string", "", kRestart,
      "STUN server name sent in THIRD-PARTY-AUTHORIZATION and sealed into tokens as their AAD; \"\" = the realm.",
      [](Config& c, std::string_view v, std::string_view) {
    return parse_stun_text(c.auth.oauth_server_name, v, true);
      },
      [](const Config& c) { return c.auth.oauth_server_name; }));
  t.push_back(uint_key("auth.oauth_clock_skew", 0, 3600, "5", kRestart,
                       "Seconds an access token is accepted before its timestamp or after its expiry.",
                       FIELD(auth.oauth_clock_skew)));

  t.push_back(strings_key("peers.allow", "list of CIDR", kRestart,
                          "Addresses or CIDRs relayed traffic may always go to, even when denied.", check_cidr,
                          FIELD(peers.allow)));
  t.push_back(strings_key("peers.deny", "list of CIDR", kRestart, "Addresses or CIDRs relayed traffic may never go to.",
                          check_cidr, FIELD(peers.deny)));

  t.push_back(uint_key("limits.max_allocations", 0, u32, "0", kReload, "Allocations in total; 0 = unlimited.",
                       FIELD(limits.max_allocations)));
  t.push_back(uint_key("limits.max_allocations_per_user", 0, u32, "0", kReload,
                       "Allocations per username; 0 = unlimited; not above max_allocations.",
                       FIELD(limits.max_allocations_per_user)));
  t.push_back(uint_key("limits.max_permissions_per_allocation", 1, 65535, "32", kReload,
                       "Permissions (peer IPs) one allocation may hold.",
                       FIELD(limits.max_permissions_per_allocation)));
  t.push_back(uint_key("limits.max_channels_per_allocation", 1, 4096, "32", kReload,
                       "Channels one allocation may bind.", FIELD(limits.max_channels_per_allocation)));
  t.push_back(uint_key("limits.bandwidth_per_allocation", 0, u64, "0", kReload,
                       "Bytes per second relayed for one allocation; 0 = unlimited.",
                       FIELD(limits.bandwidth_per_allocation)));
  t.push_back(uint_key("limits.default_lifetime", 1, 3600, "600", kReload,
                       "Allocation lifetime in seconds when the client asks for none; at most max_lifetime.",
                       FIELD(limits.default_lifetime)));
  t.push_back(uint_key("limits.max_lifetime", 1, 3600, "3600", kReload,
                       "Longest allocation lifetime in seconds a client may ask for.", FIELD(limits.max_lifetime)));
  t.push_back(uint_key("limits.unauth_requests_per_second", 0, 1000000, "50", kReload,
                       "Answers per second to one source IP before it has authenticated, per worker; 0 = unlimited.",
                       FIELD(limits.unauth_requests_per_second)));
  t.push_back(uint_key("limits.max_connections", 0, u32, "10000", kRestart,
                       "TCP/TLS connections and DTLS sessions in total; 0 = unlimited.",
                       FIELD(limits.max_connections)));
  t.push_back(uint_key("limits.max_connections_per_ip", 0, u32, "256", kRestart,
                       "Connections and sessions from one source IP; 0 = unlimited.",
                       FIELD(limits.max_connections_per_ip)));
  t.push_back(uint_key("limits.handshake_timeout", 1, 300, "10", kRestart,
                       "Seconds a connection has to finish TLS/DTLS and send its first STUN message.",
                       FIELD(limits.handshake_timeout)));
  t.push_back(uint_key("limits.connection_idle_timeout", 1, 86400, "300", kRestart,
                       "Seconds a connection without an allocation may stay silent before it is closed.",
                       FIELD(limits.connection_idle_timeout)));
  t.push_back(uint_key("limits.connection_write_budget", 4096, 1ull << 30, "262144", kRestart,
                       "Bytes queued for one slow TCP/TLS client before relayed data to it is dropped.",
                       FIELD(limits.connection_write_budget)));

  t.push_back(scalar_key(
      "tls.cert", "path", "", kRestart,
      "PEM certificate chain for tls and dtls listeners; the file is re-read on SIGHUP and when it changes.",
      [](Config& c, std::string_view v, std::string_view dir) { return parse_path(c.tls.cert, v, dir); },
      [](const Config& c) { return c.tls.cert; }));
  t.push_back(scalar_key(
      "tls.key", "path", "", kRestart,
      "PEM private key file for tls and dtls listeners (a path; re-read like tls.cert).",
      [](Config& c, std::string_view v, std::string_view dir) { return parse_path(c.tls.key, v, dir); },
      [](const Config& c) { return c.tls.key; }));
  t.push_back(scalar_key(
      "tls.ciphers", "string", "", kRestart,
      "OpenSSL cipher list for TLS 1.2 and DTLS 1.2; \"\" = the built-in default.",
      [](Config& c, std::string_view v, std::string_view) { return (c.tls.ciphers = std::string(v), std::string()); },
      [](const Config& c) { return c.tls.ciphers; }));
  t.push_back(scalar_key(
      "tls.ciphersuites", "string", "", kRestart, "TLS 1.3 suites; \"\" = the built-in default.",
      [](Config& c, std::string_view v, std::string_view) {
    return (c.tls.ciphersuites = std::string(v), std::string());
      },
      [](const Config& c) { return c.tls.ciphersuites; }));
  t.push_back(scalar_key(
      "tls.min_version", "1.2 or 1.3", "1.2", kRestart, "Oldest TLS version accepted over TCP (DTLS is always 1.2).",
      [](Config& c, std::string_view v, std::string_view) -> std::string {
        if (v != "1.2" && v != "1.3") return "must be 1.2 or 1.3 (got " + quote(v) + ")";
        c.tls.min_version = std::string(v);
        return "";
      },
      [](const Config& c) { return c.tls.min_version; }));
  t.push_back(uint_key("tls.reload_interval", 0, 86400, "60", kRestart,
                       "Seconds between checks of cert and key for changes; 0 = reload on SIGHUP only.",
                       FIELD(tls.reload_interval)));

  t.push_back(scalar_key(
      "log.level", "trace|debug|info|warn|error|off", "info", kReload, "Log level.",
      [](Config& c, std::string_view v, std::string_view) -> std::string {
        auto l = parse_log_level(v);
        if (!l) return "must be one of trace, debug, info, warn, error, off (got " + quote(v) + ")";
        c.log.level = *l;
        return "";
      },
      [](const Config& c) { return std::string(to_string(c.log.level)); }));
  t.push_back(scalar_key(
      "log.format", "text|json", "text", kRestart, "Log format on stderr: text, or json with one object per line.",
      [](Config& c, std::string_view v, std::string_view) -> std::string {
        auto f = parse_log_format(v);
        if (!f) return "must be text or json (got " + quote(v) + ")";
        c.log.format = *f;
        return "";
      },
      [](const Config& c) { return std::string(to_string(c.log.format)); }));

  t.push_back(scalar_key(
      "http.address", "IP:PORT or off", "127.0.0.1:9641", kRestart,
      "Operations endpoint (/metrics, /healthz, /readyz, /v1/ice-servers); \"\" or off turns it off.",
      [](Config& c, std::string_view v, std::string_view) { return parse_http_address(c.http.address, v); },
      [](const Config& c) { return address_text(c.http.address); }));
  t.push_back(list_key(
      "http.api_keys", "list of API keys", "", kReload,
      "API keys for GET /v1/ice-servers: {name, sha256} (the SHA-256 of the key, in hex); none = every request gets "
      "401.",
      parse_api_keys_yaml, items_into(FIELD(http.api_keys), parse_api_key_spec), dump_api_keys));
  t.push_back(uint_key("http.api_requests_per_second", 0, 1000000, "5", kReload,
                       "Requests per second one API key may make; 0 = unlimited.",
                       FIELD(http.api_requests_per_second)));
  t.push_back(strings_key("http.ice_urls", "list of URLs", kReload,
                          "stun:/turn:/turns: URLs /v1/ice-servers hands out; empty = derived from the listeners.",
                          check_ice_url, FIELD(http.ice_urls)));
  t.push_back(uint_key("http.ice_nodes", 1, 64, "3", kReload,
                       "With a database: /v1/ice-servers lists up to this many live active nodes, least loaded first.",
                       FIELD(http.ice_nodes)));
  t.push_back(uint_key("http.credential_ttl", 1, 31536000, "3600", kReload,
                       "Seconds a handed-out credential lives when the request has no ?ttl=.",
                       FIELD(http.credential_ttl)));
  t.push_back(uint_key("http.max_credential_ttl", 1, 31536000, "86400", kReload,
                       "The longest lifetime a ?ttl= gets, in seconds.", FIELD(http.max_credential_ttl)));

  t.push_back(uint_key("drain.timeout", 0, 86400, "30", kRestart,
                       "Seconds SIGTERM waits for allocations to end before exiting; 0 = exit at once.",
                       FIELD(drain.timeout)));
  t.push_back(scalar_key(
      "drain.alternate_server", "IP[:PORT]", "", kRestart,
      "Where new Allocates are sent while draining (300 Try Alternate); \"\" = refuse them with 508.",
      [](Config& c, std::string_view v, std::string_view) {
    return parse_optional_address(c.drain.alternate_server, v);
      },
      [](const Config& c) { return address_text(c.drain.alternate_server); }));

  t.push_back(scalar_key(
      "database.url", "string", "", kRestart, "PostgreSQL URI or libpq key=value string; \"\" = no database.",
      [](Config& c, std::string_view v, std::string_view) {
    c.database.url_file.clear();
    return parse_database_url(c.database.url, v);
      },
      [](const Config& c) { return c.database.url; }));
  t.back().secret = Secrecy::Conninfo;
  t.back().excludes = "url_file";
  t.back().shown = [](const Config& c) { return c.database.url_file.empty(); };
  t.push_back(scalar_key(
      "database.url_file", "path", "", kRestart, "A file holding database.url (one trailing newline is dropped).",
      [](Config& c, std::string_view v, std::string_view dir) -> std::string {
        std::string url, path;
        if (auto e = read_secret_file(url, path, v, dir); !e.empty()) return e;
        if (auto e = parse_database_url(c.database.url, url); !e.empty()) return "contents: " + e;
        c.database.url_file = path;
        return "";
      },
      [](const Config& c) { return c.database.url_file; }));
  t.back().shown = [](const Config& c) { return !c.database.url_file.empty(); };
  t.push_back(uint_key("database.pool_size", 1, 64, "2", kRestart,
                       "Query connections per worker (each worker LISTENs on one more).", FIELD(database.pool_size)));
  t.push_back(uint_key("database.cache_ttl", 1, 86400, "60", kRestart,
                       "Seconds a looked-up user is served without asking again.", FIELD(database.cache_ttl)));
  t.push_back(uint_key("database.negative_cache_ttl", 0, 3600, "10", kRestart,
                       "Seconds an unknown username is remembered.", FIELD(database.negative_cache_ttl)));
  t.push_back(uint_key("database.max_stale", 0, 30 * 86400, "86400", kRestart,
                       "Seconds a cached user keeps working while the database is down.", FIELD(database.max_stale)));
  t.push_back(uint_key("database.secrets_refresh", 1, 86400, "60", kRestart,
                       "Seconds between reloads of shared secrets (their expiry).", FIELD(database.secrets_refresh)));

  t.push_back(scalar_key(
      "node.id", "string", "", kRestart,
      "This instance's id in the node registry (with a database); \"\" = <hostname>-<first listener port>.",
      [](Config& c, std::string_view v, std::string_view) -> std::string {
        if (!v.empty() && !valid_node_id(v)) return "must be 1-64 letters, digits or . _ - (got " + quote(v) + ")";
        c.node.id = std::string(v);
        return "";
      },
      [](const Config& c) { return c.node.id; }));
  t.push_back(uint_key("node.heartbeat_interval", 1, 3600, "5", kRestart,
                       "Seconds between upserts of this node's registry row; 3 missed = down.",
                       FIELD(node.heartbeat_interval)));

  t.push_back(scalar_key(
      "nat_discovery.other_address", "IP", "", kRestart,
      "RFC 5780: the second IP (A2); with other_port, Binding answers honour CHANGE-REQUEST.",
      [](Config& c, std::string_view v, std::string_view) -> std::string {
        if (v.empty()) {
          c.nat_discovery.other_address.reset();
          return "";
        }
        stun::TransportAddress a;
        if (auto d = parse_ip_into(a, v); !d.empty()) return d + ", or \"\" for none";
        c.nat_discovery.other_address = a;
        return "";
      },
      [](const Config& c) {
    return c.nat_discovery.other_address ? c.nat_discovery.other_address->ip_string() : std::string();
      }));
  t.push_back(uint_key("nat_discovery.other_port", 0, 65535, "0", kRestart, "RFC 5780: the second port (P2); 0 = off.",
                       FIELD(nat_discovery.other_port)));

  t.push_back(uint_key("usage.interval", 1, 86400, "60", kRestart,
                       "Seconds between interim usage records of a live allocation (with a database).",
                       FIELD(usage.interval)));
  t.push_back(uint_key("usage.queue_size", 1, 1000000, "10000", kRestart,
                       "Usage records buffered per worker while the database is slow or down; beyond, dropped.",
                       FIELD(usage.queue_size)));
  t.push_back(uint_key("usage.top_users", 0, 100, "10", kRestart,
                       "Users shown on /metrics by relayed bytes (bounds the label count); 0 = none.",
                       FIELD(usage.top_users)));
  return t;
}
#undef FIELD

}  // namespace

std::string_view ConfigKey::section() const {
  auto dot = key.find('.');
  return dot == std::string::npos ? std::string_view() : std::string_view(key).substr(0, dot);
}

std::string_view ConfigKey::name() const {
  auto dot = key.find('.');
  return dot == std::string::npos ? std::string_view(key) : std::string_view(key).substr(dot + 1);
}

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = build_schema();
  return schema;
}

const ConfigKey* find_config_key(std::string_view dotted_key) {
  for (const auto& k : config_schema())
    if (k.key == dotted_key) return &k;
  return nullptr;
}

bool is_config_section(std::string_view name) {
  for (const auto& k : config_schema())
    if (!name.empty() && k.section() == name) return true;
  return false;
}

std::vector<std::string> config_children(std::string_view prefix) {
  std::vector<std::string> out;
  auto add = [&](std::string_view name) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.emplace_back(name);
  };
  // Single values first, then lists, then sections: the order error messages list them in.
  for (KeyShape shape : {KeyShape::Scalar, KeyShape::List})
    for (const auto& k : config_schema())
      if (k.shape == shape) {
        if (prefix.empty()) add(k.section().empty() ? k.name() : k.section());
        else if (k.section() == prefix) add(k.name());
      }
  return out;
}

// The defaults are the table's: each row's default_value, read as a FERRY_* variable would be.
Config::Config() {
  for (const auto& k : config_schema()) {
    if (k.default_value.empty()) continue;  // the zero value
    std::string detail;
    if (k.shape == KeyShape::Scalar) {
      detail = k.set(*this, k.default_value, "");
    } else {
      std::vector<std::string> items;
      for (size_t start = 0; start <= k.default_value.size();) {
        auto comma = k.default_value.find(',', start);
        items.push_back(k.default_value.substr(start, comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      detail = k.set_items(*this, items);
    }
    if (!detail.empty()) {  // a broken row: caught by the first test that makes a Config
      std::fprintf(stderr, "ferry: the default of %s is invalid: %s\n", k.key.c_str(), detail.c_str());
      std::abort();
    }
  }
}

}  // namespace ferry::server
