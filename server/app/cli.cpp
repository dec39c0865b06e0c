#include "server/app/cli.h"

#include <CLI/CLI.hpp>

#include <charconv>

namespace ferry::server {

namespace {

constexpr int kUsageError = 2;

// Flag names someone might try for a secret. They do not exist; say why and where secrets go.
constexpr const char* kSecretFlags[] = {
    "--password", "--pass", "--secret", "--shared-secret", "--static-auth-secret", "--auth-secret", "--database-url",
    "--db-url",   "--user", "--key",    "--api-key"};

std::string secrets_hint() {
  return "secrets are never taken as flags (they would show in `ps` and shell history): put them in the config "
         "file (auth.users[].password or password_file, auth.shared_secrets, database.url or url_file) or in "
         "environment variables (FERRY_AUTH_SHARED_SECRETS, FERRY_DATABASE_URL, FERRY_DATABASE_URL_FILE)";
}

struct Flags {
  std::string config;
  std::string check_config;
  std::string realm;
  std::vector<std::string> listen;
  std::vector<std::string> relay_address;
  std::vector<std::string> external_address;
  std::string port_range;
  std::string log_level;
  std::string log_format;
  std::string http_address;
  std::string workers;
  std::vector<std::string> api_key_hash;
  std::vector<std::string> ice_url;
  std::string drain_timeout;
  std::string alternate_server;
  std::vector<std::string> allow_peer;
  std::vector<std::string> deny_peer;
  std::vector<std::string> set;  // KEY=VALUE for any single-value key
  std::string tls_cert;
  std::string tls_key;
  bool version = false;
};

std::string env_footer() {
  std::string s =
      "Settings, later wins: built-in defaults < config file < FERRY_* environment variables < flags.\n"
      "Every single-value key of the config file has a variable: dots become underscores, upper case\n"
      "(limits.max_lifetime -> FERRY_LIMITS_MAX_LIFETIME). Lists take comma-separated values.\n"
      "FERRY_CONFIG names the config file when --config is not given.\n"
      "There are no flags for secrets: put passwords, shared secrets and the database URL in the\n"
      "config file (or files it points at: password_file, secret_file, url_file) or in FERRY_*\n"
      "variables such as FERRY_AUTH_SHARED_SECRETS and FERRY_DATABASE_URL.\n\n"
      "Environment variables:\n";
  for (const auto& [var, key] : environment_variables()) s += "  " + var + "  (" + key + ")\n";
  s += "\nSignals: SIGINT and SIGTERM stop the server; SIGHUP reloads the TLS certificate and key (open\n"
       "connections keep the certificate they started with; a file that fails to load keeps the old one).\n";
  s += "\nAn annotated example config is in examples/ferry.yaml. Exit status: 0 ok, 2 bad flags or config.";
  return s;
}

void build_app(CLI::App& app, Flags& f) {
  app.name("ferry");
  app.description("ferry " FERRY_VERSION ": a STUN/TURN server (RFC 8489, RFC 8656).");
  app.set_help_flag("-h,--help", "Print this help and exit.");
  auto* config = app.add_option("-c,--config", f.config,
                                "Load settings from this YAML file (see examples/ferry.yaml); without it the built-in "
                                "defaults run STUN on port 3478.")
                     ->type_name("FILE");
  app.add_option("--check-config", f.check_config,
                 "Validate this config file together with FERRY_* variables and the other flags, print the effective "
                 "config with secrets masked and exit 0, or print the error and exit 2.")
      ->type_name("FILE")
      ->excludes(config);
  app.add_option("--realm", f.realm, "Authentication realm sent to clients (realm).")->type_name("REALM");
  app.add_option("--listen", f.listen,
                 "Listen on IP[:PORT][/udp|tcp|tls|dtls]; repeat for more. Replaces the listeners of the file. "
                 "Without a transport: udp and tcp; without a port: 3478 (5349 for tls/dtls); IPv6 in brackets: "
                 "[::]:3478/udp.")
      ->type_name("ADDR:PORT/TRANSPORT");
  app.add_option(
         "--relay-address", f.relay_address,
         "Local IP relayed sockets bind to, one per family; repeat for IPv4 and IPv6. Replaces relay.addresses.")
      ->type_name("IP");
  app.add_option("--external-address", f.external_address,
                 "Public IP advertised for relayed addresses of the same family, behind a 1:1 NAT "
                 "(relay.addresses[].external).")
      ->type_name("IP");
  app.add_option("--port-range", f.port_range,
                 "Relay ports to allocate from, inclusive (relay.port_min, relay.port_max).")
      ->type_name("MIN-MAX");
  app.add_option("--log-level", f.log_level, "Log level: trace, debug, info, warn, error or off (log.level).")
      ->type_name("LEVEL");
  app.add_option("--log-format", f.log_format,
                 "Log format on stderr: text, or json with one object per line (log.format).")
      ->type_name("text|json");
  app.add_option("--http-address", f.http_address,
                 "Address of the HTTP endpoint for operations, IP:PORT, or off (or \"\") to turn it off "
                 "(http.address; default 127.0.0.1:9641): /metrics (Prometheus), /healthz, /readyz and "
                 "GET /v1/ice-servers.")
      ->type_name("IP:PORT");
  app.add_option("--api-key-hash", f.api_key_hash,
                 "An API key for /v1/ice-servers as NAME:SHA256HEX, the SHA-256 of the key (never the key "
                 "itself); repeat for more. Replaces http.api_keys.")
      ->type_name("NAME:SHA256");
  app.add_option("--ice-url", f.ice_url,
                 "A stun:, turn: or turns: URL that /v1/ice-servers hands out; repeat for more. Replaces "
                 "http.ice_urls (default: derived from the listeners and external addresses).")
      ->type_name("URL");
  app.add_option("--drain-timeout", f.drain_timeout,
                 "Seconds SIGTERM waits for allocations to end before exiting; 0 exits at once (drain.timeout).")
      ->type_name("SECONDS");
  app.add_option("--alternate-server", f.alternate_server,
                 "While draining, send new Allocates here with 300 Try Alternate instead of refusing them with "
                 "508 (drain.alternate_server).")
      ->type_name("IP:PORT");
  app.add_option("--workers", f.workers, "Worker threads; 0 means one per CPU core (workers).")->type_name("N");
  app.add_option("--allow-peer", f.allow_peer,
                 "Allow relaying to this address or CIDR even if denied; repeat for more. Added to peers.allow.")
      ->type_name("CIDR");
  app.add_option("--deny-peer", f.deny_peer,
                 "Refuse relaying to this address or CIDR; repeat for more. Added to peers.deny.")
      ->type_name("CIDR");
  app.add_option("--set", f.set,
                 "Set any single-value key of the config file, e.g. --set limits.max_lifetime=1800 or "
                 "--set database.pool_size=4; repeat for more. Applied after the other flags. Not for secrets.")
      ->type_name("KEY=VALUE");
  app.add_option("--tls-cert", f.tls_cert,
                 "PEM certificate chain for the tls and dtls listeners (tls.cert); reloaded on SIGHUP and when the "
                 "file changes.")
      ->type_name("FILE");
  app.add_option("--tls-key", f.tls_key,
                 "PEM private key file for the tls and dtls listeners (tls.key); a path, the key stays in the file.")
      ->type_name("FILE");
  app.add_flag("-V,--version", f.version, "Print the version and exit.");
  app.footer(env_footer());
}

ExitNow usage_error(const std::string& message) {
  return ExitNow{kUsageError, "ferry: " + message + "\nRun 'ferry --help' for the flags.\n"};
}

std::optional<ConfigError> apply_flags(Config& c, const Flags& f) {
  auto fail = [](const std::string& flag, const std::string& detail) { return ConfigError{flag + ": " + detail}; };
  auto set = [&](const char* flag, const char* key, const std::string& value) -> std::optional<ConfigError> {
    if (auto d = set_config_value(c, key, value, flag); !d.empty()) return fail(flag, d);
    return std::nullopt;
  };
  if (!f.realm.empty())
    if (auto e = set("--realm", "realm", f.realm)) return e;
  if (!f.listen.empty()) {
    std::vector<ListenerConfig> out;
    for (const auto& l : f.listen)
      if (auto d = parse_listener_spec(l, out); !d.empty()) return fail("--listen", d);
    c.listeners = std::move(out);
    c.origins["listeners"] = "--listen";
  }
  if (!f.relay_address.empty()) {
    std::vector<RelayAddressConfig> out;
    for (const auto& r : f.relay_address)
      if (auto d = parse_relay_spec(r, out); !d.empty()) return fail("--relay-address", d);
    c.relay.addresses = std::move(out);
    c.origins["relay.addresses"] = "--relay-address";
  }
  for (const auto& e : f.external_address) {
    auto ext = stun::TransportAddress::parse_ip(e);
    if (!ext) return fail("--external-address", "must be an IPv4 or IPv6 address (got '" + e + "')");
    bool matched = false;
    for (auto& r : c.relay.addresses)
      if (r.address.family == ext->family) {
        r.external = *ext;
        matched = true;
      }
    if (!matched)
      return fail("--external-address",
                  "no relay address of the same IP family as " + e + " (add one with --relay-address)");
    c.origins["relay.addresses"] = "--external-address";
  }
  if (!f.port_range.empty()) {
    auto dash = f.port_range.find('-');
    if (dash == std::string::npos)
      return fail("--port-range", "must be MIN-MAX like 49152-65535 (got '" + f.port_range + "')");
    if (auto d = set_config_value(c, "relay.port_min", f.port_range.substr(0, dash), "--port-range"); !d.empty())
      return fail("--port-range", "MIN " + d);
    if (auto d = set_config_value(c, "relay.port_max", f.port_range.substr(dash + 1), "--port-range"); !d.empty())
      return fail("--port-range", "MAX " + d);
    if (c.relay.port_min > c.relay.port_max)
      return fail("--port-range", "MIN must not be above MAX (got '" + f.port_range + "')");
  }
  if (!f.log_level.empty())
    if (auto e = set("--log-level", "log.level", f.log_level)) return e;
  if (!f.log_format.empty())
    if (auto e = set("--log-format", "log.format", f.log_format)) return e;
  if (!f.workers.empty())
    if (auto e = set("--workers", "workers", f.workers)) return e;
  if (!f.tls_cert.empty())
    if (auto e = set("--tls-cert", "tls.cert", f.tls_cert)) return e;
  if (!f.tls_key.empty())
    if (auto e = set("--tls-key", "tls.key", f.tls_key)) return e;
  if (!f.drain_timeout.empty())
    if (auto e = set("--drain-timeout", "drain.timeout", f.drain_timeout)) return e;
  if (!f.alternate_server.empty())
    if (auto e = set("--alternate-server", "drain.alternate_server", f.alternate_server)) return e;
  if (!f.api_key_hash.empty()) {
    std::vector<ApiKeyConfig> out;
    for (const auto& k : f.api_key_hash)
      if (auto d = parse_api_key_spec(k, out); !d.empty()) return fail("--api-key-hash", d);
    c.http.api_keys = std::move(out);
    c.origins["http.api_keys"] = "--api-key-hash";
  }
  if (!f.ice_url.empty()) {
    for (const auto& u : f.ice_url)
      if (auto d = check_ice_url(u); !d.empty()) return fail("--ice-url", d);
    c.http.ice_urls = f.ice_url;
    c.origins["http.ice_urls"] = "--ice-url";
  }
  for (const auto& p : f.allow_peer)
    if (auto d = check_cidr(p); !d.empty()) return fail("--allow-peer", d);
  for (const auto& p : f.deny_peer)
    if (auto d = check_cidr(p); !d.empty()) return fail("--deny-peer", d);
  if (!f.allow_peer.empty()) {
    c.peers.allow.insert(c.peers.allow.end(), f.allow_peer.begin(), f.allow_peer.end());
    c.origins["peers.allow"] = "--allow-peer";
  }
  if (!f.deny_peer.empty()) {
    c.peers.deny.insert(c.peers.deny.end(), f.deny_peer.begin(), f.deny_peer.end());
    c.origins["peers.deny"] = "--deny-peer";
  }
  for (const auto& kv : f.set) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return fail("--set", "must be KEY=VALUE (got '" + kv + "')");
    const std::string key = kv.substr(0, eq);
    if (key == "database.url") return fail("--set", key + ": " + secrets_hint());
    if (auto d = set_config_value(c, key, kv.substr(eq + 1), "--set " + key); !d.empty())
      return fail("--set " + key, d);
  }
  return std::nullopt;
}

}  // namespace

std::string help_text() {
  CLI::App app;
  Flags f;
  build_app(app, f);
  return app.help() + "\n";
}

CommandLineResult parse_command_line(int argc, const char* const* argv, const Environment& env) {
  // Hidden, for regenerating docs/CONFIG.md from the schema table; not in --help (not for operators).
  if (argc == 2 && std::string_view(argv[1]) == "--config-reference") return ExitNow{0, config_reference_markdown()};
  // A secret-looking flag gets a specific answer instead of "unknown option".
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    auto name = arg.substr(0, arg.find('='));
    for (const char* s : kSecretFlags)
      if (name == s) return usage_error(std::string(name) + ": no such flag; " + secrets_hint() + ".");
  }

  // CLI11 drops empty arguments, but `--http-address ""` means "off": say so explicitly.
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {
    std::string a = argv[i];
    if (a == "--http-address=") a = "--http-address=off";
    if (a == "--http-address" && i + 1 < argc && argv[i + 1][0] == '\0') args.back() = "off";
    args.push_back(std::move(a));
  }

  CLI::App app;
  Flags f;
  build_app(app, f);
  try {
    app.parse(args);  // reversed, as CLI11 wants a vector
  } catch (const CLI::CallForHelp&) { return ExitNow{0, app.help() + "\n"}; } catch (const CLI::CallForAllHelp&) {
    return ExitNow{0, app.help() + "\n"};
  } catch (const CLI::ParseError& e) { return usage_error(e.what()); }
  if (f.version) return ExitNow{0, "ferry " FERRY_VERSION "\n"};
  // --http-address "" means "off", so whether it was given is not whether it is empty.
  const bool http_given = app.get_option("--http-address")->count() > 0;

  const bool checking = !f.check_config.empty();
  std::optional<std::string> path;
  if (checking) path = f.check_config;
  else if (!f.config.empty()) path = f.config;
  else if (auto it = env.find("FERRY_CONFIG"); it != env.end() && !it->second.empty()) path = it->second;

  auto fail = [&](const std::string& message) { return ExitNow{kUsageError, message + "\n"}; };
  Config config;
  if (path) {
    auto r = parse_config_file(*path);
    if (!r) return fail(r.error().message);
    config = std::move(r).value();
  }
  if (auto e = apply_environment(config, env)) return fail(e->message);
  if (auto e = apply_flags(config, f)) return fail(e->message);
  if (http_given)
    if (auto d = set_config_value(config, "http.address", f.http_address, "--http-address"); !d.empty())
      return fail("--http-address: " + d);
  if (auto e = validate_config(config)) return fail(e->message);

  auto warnings = environment_warnings(env);
  if (checking) {
    std::string text = "# " + *path + ": OK\n";
    for (const auto& w : warnings) text += "# warning: " + w + "\n";
    if (!config.turn_enabled()) text += "# note: no auth.users or auth.shared_secrets, so TURN is off (STUN only)\n";
    return ExitNow{0, text + dump_effective(config)};
  }
  return RunConfig{std::move(config), path, std::move(warnings)};
}

}  // namespace ferry::server
