#include "tools/ferryctl/fleet.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <vector>

#include "db/pg_connection.h"

namespace ferry::ferryctl {

namespace {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

using db::one_line;

Result exec(PGconn* conn, const char* sql, const std::vector<std::optional<std::string>>& params = {}) {
  std::vector<const char*> v;
  for (const auto& p : params) v.push_back(p ? p->c_str() : nullptr);
  Result r(PQexecParams(conn, sql, static_cast<int>(v.size()), nullptr, v.data(), nullptr, nullptr, 0));
  const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  const char* code = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn));
  if (code != nullptr && std::string_view(code) == "42P01")
    throw std::runtime_error("database error: " + msg + " (run `ferryctl db migrate` first)");
  throw std::runtime_error("database error: " + msg);
}

constexpr char kTime[] = "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"";

std::string nodes_sql() {
  std::string t = kTime;
  return "SELECT id, status, allocations, relayed_bps, cpu, urls::text, version, "
         "to_char(last_seen AT TIME ZONE 'UTC', '" +
         t +
         "'), "
         "to_char(started_at AT TIME ZONE 'UTC', '" +
         t +
         "'), "
         "extract(epoch FROM now() - last_seen), desired_state, "
         "to_char(drain_deadline AT TIME ZONE 'UTC', '" +
         t +
         "'), addresses::text "
         "FROM node_status ORDER BY id";
}

std::string human_rate(double bps) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bps >= 1000 && u < 4) {
    bps /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s/s" : "%.1f %s/s", bps, units[u]);
  return buf;
}

int cmd_nodes(PGconn* conn, bool json) {
  Result r = exec(conn, nodes_sql().c_str());
  const int n = PQntuples(r.get());
  auto val = [&](int row, int col) { return std::string(PQgetvalue(r.get(), row, col)); };
  auto null = [&](int row, int col) { return PQgetisnull(r.get(), row, col) != 0; };
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (int i = 0; i < n; ++i) {
      nlohmann::json urls = nlohmann::json::parse(val(i, 5), nullptr, false);
      nlohmann::json addresses = nlohmann::json::parse(val(i, 12), nullptr, false);
      out.push_back({{"id", val(i, 0)},
                     {"state", val(i, 1)},
                     {"allocations", std::stoll(val(i, 2))},
                     {"relayed_bytes_per_second", std::stod(val(i, 3))},
                     {"cpu_percent", std::stod(val(i, 4))},
                     {"urls", urls.is_array() ? urls : nlohmann::json::array()},
                     {"addresses", addresses.is_object() ? addresses : nlohmann::json::object()},
                     {"version", val(i, 6)},
                     {"last_seen", val(i, 7)},
                     {"started_at", val(i, 8)},
                     {"seconds_since_seen", std::stod(val(i, 9))},
                     {"desired_state", val(i, 10)},
                     {"drain_deadline", null(i, 11) ? nlohmann::json(nullptr) : nlohmann::json(val(i, 11))}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (n == 0) {
    std::cout << "no nodes registered (ferry instances with a database register themselves)\n";
    return 0;
  }
  std::printf("%-24s %-9s %11s %12s %6s %-10s %-21s %s\n", "ID", "STATE", "ALLOCATIONS", "RELAYED", "CPU%", "VERSION",
              "LAST SEEN", "URLS");
  for (int i = 0; i < n; ++i) {
    nlohmann::json urls = nlohmann::json::parse(val(i, 5), nullptr, false);
    std::string url_text;
    if (urls.is_array())
      for (const auto& u : urls)
        if (u.is_string()) url_text += (url_text.empty() ? "" : " ") + u.get<std::string>();
    std::string state = val(i, 1);
    if (!null(i, 11) && state == "draining") state += "*";  // a deadline is set
    std::printf("%-24s %-9s %11s %12s %6.1f %-10s %-21s %s\n", val(i, 0).c_str(), state.c_str(), val(i, 2).c_str(),
                human_rate(std::stod(val(i, 3))).c_str(), std::stod(val(i, 4)), val(i, 6).c_str(), val(i, 7).c_str(),
                url_text.c_str());
  }
  return 0;
}

int cmd_set_state(PGconn* conn, const std::string& node, bool drain, std::optional<uint32_t> deadline) {
  std::optional<std::string> secs;
  if (deadline) secs = std::to_string(*deadline);
  Result r = exec(conn,
                  "UPDATE nodes SET desired_state = $2, drain_deadline = CASE WHEN $3::integer IS NULL THEN NULL "
                  "ELSE now() + make_interval(secs => $3::integer) END WHERE id = $1 "
                  "RETURNING (SELECT status FROM node_status WHERE id = $1)",
                  {node, std::string(drain ? "draining" : "active"), secs});
  if (PQntuples(r.get()) == 0) throw std::runtime_error("no node '" + node + "' (see `ferryctl nodes`)");
  const std::string was = PQgetvalue(r.get(), 0, 0);
  if (drain) {
    std::cout << "node " << node << ": draining";
    if (deadline) std::cout << ", allocations left after " << *deadline << " s are closed";
    std::cout << "\n";
  } else {
    std::cout << "node " << node << ": active\n";
  }
  if (was == "down") std::cerr << "ferryctl: warning: node " << node << " is down; it will see this when it is back\n";
  return 0;
}

// A user's allocations: the whole USERNAME, or the user part of a TURN REST one ("expiry:user").
constexpr char kUserMatch[] =
    "(s.username = $1 OR (strpos(s.username, ':') > 0 AND substr(s.username, strpos(s.username, ':') + 1) = $1))";

int cmd_sessions(PGconn* conn, const std::optional<std::string>& user, const std::optional<std::string>& node,
                 bool json) {
  std::string t = kTime;
  std::string sql =
      "SELECT s.node, s.id, s.username, s.client, s.transport, s.relayed, s.permissions, "
      "greatest(0, extract(epoch FROM s.expires_at - now()))::bigint, "
      "to_char(s.updated_at AT TIME ZONE 'UTC', '" +
      t +
      "'), CASE WHEN s.started_at IS NOT NULL THEN greatest(0, floor(extract(epoch FROM now() - s.started_at))) "
      "END::bigint, s.bytes_in, s.bytes_out "
      "FROM sessions s JOIN node_status n ON n.id = s.node "
      "WHERE n.status <> 'down' AND s.expires_at > now() AND ($1::text IS NULL OR " +
      kUserMatch + ") AND ($2::text IS NULL OR s.node = $2) ORDER BY s.node, s.username, s.id";
  Result r = exec(conn, sql.c_str(), {user, node});
  const int n = PQntuples(r.get());
  auto val = [&](int row, int col) { return std::string(PQgetvalue(r.get(), row, col)); };
  // No age in rows written by a node older than migration 0007 (started_at NULL).
  auto has_age = [&](int row) { return PQgetisnull(r.get(), row, 9) == 0; };
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (int i = 0; i < n; ++i) {
      out.push_back({{"node", val(i, 0)},
                     {"id", val(i, 0) + "/" + val(i, 1)},
                     {"user", val(i, 2)},
                     {"client", val(i, 3)},
                     {"transport", val(i, 4)},
                     {"relayed", val(i, 5)},
                     {"permissions", std::stoll(val(i, 6))},
                     {"expires_in", std::stoll(val(i, 7))},
                     {"age", has_age(i) ? nlohmann::json(std::stoll(val(i, 9))) : nlohmann::json()},
                     {"bytes_in", std::stoll(val(i, 10))},
                     {"bytes_out", std::stoll(val(i, 11))},
                     {"as_of", val(i, 8)}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (n == 0) {
    std::cout << "no live allocations\n";
    return 0;
  }
  std::printf("%-40s %-24s %-24s %-4s %-24s %5s %8s %15s %15s %8s\n", "ID", "USER", "CLIENT", "VIA", "RELAYED", "PERMS",
              "AGE", "BYTES_IN", "BYTES_OUT", "EXPIRES");
  for (int i = 0; i < n; ++i) {
    std::printf("%-40s %-24s %-24s %-4s %-24s %5s %8s %15s %15s %7ss\n", (val(i, 0) + "/" + val(i, 1)).c_str(),
                val(i, 2).c_str(), val(i, 3).c_str(), val(i, 4).c_str(), val(i, 5).c_str(), val(i, 6).c_str(),
                (has_age(i) ? val(i, 9) + "s" : "-").c_str(), val(i, 10).c_str(), val(i, 11).c_str(),
                val(i, 7).c_str());
  }
  return 0;
}

int cmd_kill(PGconn* conn, const std::optional<std::string>& user, const std::optional<std::string>& allocation) {
  if (user.has_value() == allocation.has_value())
    throw std::runtime_error("kill needs one of --user U or --allocation NODE/ID");
  nlohmann::json order;
  Result known;
  std::string what;
  if (user) {
    if (user->empty()) throw std::runtime_error("--user must not be empty");
    order = {{"user", *user}};
    what = "user " + *user;
    known = exec(conn,
                 (std::string("SELECT count(*), count(DISTINCT s.node) FROM sessions s JOIN node_status n ON n.id = "
                              "s.node WHERE n.status <> 'down' AND ") +
                  kUserMatch)
                     .c_str(),
                 {*user});
  } else {
    const auto slash = allocation->find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == allocation->size())
      throw std::runtime_error("--allocation takes NODE/ID as `ferryctl sessions` shows it (got '" + *allocation +
                               "')");
    const std::string node = allocation->substr(0, slash), id = allocation->substr(slash + 1);
    order = {{"node", node}, {"allocation", id}};
    what = "allocation " + *allocation;
    known = exec(conn, "SELECT count(*), count(DISTINCT node) FROM sessions WHERE node = $1 AND id = $2", {node, id});
  }
  const std::string count = PQgetvalue(known.get(), 0, 0), nodes = PQgetvalue(known.get(), 0, 1);
  // Delivered at once to every node that LISTENs; each closes what it holds of it.
  exec(conn, "SELECT pg_notify('ferry_kill', $1)", {order.dump()});
  if (count == "0") std::cout << "no live allocation of " << what << " is listed; every node was told anyway\n";
  else std::cout << "closing " << count << " allocation(s) of " << what << " on " << nodes << " node(s)\n";
  return 0;
}

}  // namespace

FleetCommands::FleetCommands(CLI::App& app) {
  nodes_ = app.add_subcommand("nodes", "list the fleet's nodes: status (active|draining|down), load, URLs");
  nodes_->add_flag("--json", json_, "a JSON array of objects (id, state, allocations, urls, last_seen, ...)");
  drain_ = app.add_subcommand("drain", "make a node refuse new allocations (300 to a live node, or 508)");
  drain_->add_option("node", node_, "node id (see `ferryctl nodes`)")->required();
  drain_->add_option("--deadline", deadline_, "close the node's remaining allocations after SECONDS")
      ->check(CLI::Range(0u, 31536000u));
  undrain_ = app.add_subcommand("undrain", "let a drained node take allocations again");
  undrain_->add_option("node", node_, "node id")->required();
  sessions_ = app.add_subcommand(
      "sessions",
      "list live allocations across the fleet (as of each node's last heartbeat): id, user, client and transport, "
      "relayed address, permissions, age in seconds, payload bytes in (client to peers) and out (peers to client), "
      "seconds to expiry");
  sessions_->add_option("--user", user_, "only this user's (a TURN REST username's user part counts)");
  sessions_->add_option("--node", filter_node_, "only this node's");
  sessions_->add_flag("--json", json_,
                      "a JSON array of objects (id, node, user, client, transport, relayed, permissions, expires_in, "
                      "age, bytes_in, bytes_out, as_of)");
  kill_ = app.add_subcommand("kill", "close allocations on whichever node holds them");
  kill_->add_option("--user", user_, "every allocation of this user");
  kill_->add_option("--allocation", allocation_, "one allocation, NODE/ID as `ferryctl sessions` shows it");
}

std::optional<int> FleetCommands::run(PGconn* conn) const {
  if (*nodes_) return cmd_nodes(conn, json_);
  if (*drain_) return cmd_set_state(conn, node_, true, deadline_);
  if (*undrain_) return cmd_set_state(conn, node_, false, std::nullopt);
  if (*sessions_) return cmd_sessions(conn, user_, filter_node_, json_);
  if (*kill_) return cmd_kill(conn, user_, allocation_);
  return std::nullopt;
}

}  // namespace ferry::ferryctl
