#include "server/ops/node_registry.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <spdlog/spdlog.h>

namespace ferry::server {

namespace {

db::LogFn spdlog_logger() {
  return [](db::LogLevel level, std::string_view msg) {
    switch (level) {
      case db::LogLevel::Debug: spdlog::debug("node registry: {}", msg); break;
      case db::LogLevel::Info: spdlog::info("node registry: {}", msg); break;
      case db::LogLevel::Warn: spdlog::warn("node registry: {}", msg); break;
      case db::LogLevel::Error: spdlog::error("node registry: {}", msg); break;
    }
  };
}

// last_seen is the database's now(), so every node's rows are on one clock; `started_at` is ours.
constexpr char kUpsert[] =
    "INSERT INTO nodes (id, urls, addresses, version, started_at, last_seen, heartbeat_interval, state, allocations, "
    "relayed_bps, cpu) VALUES ($1, $2::jsonb, $3::jsonb, $4, to_timestamp($5::double precision), now(), $6::integer, "
    "$7, $8::bigint, $9::double precision, $10::double precision) "
    "ON CONFLICT (id) DO UPDATE SET urls = EXCLUDED.urls, addresses = EXCLUDED.addresses, version = EXCLUDED.version, "
    "started_at = EXCLUDED.started_at, last_seen = now(), heartbeat_interval = EXCLUDED.heartbeat_interval, "
    "state = EXCLUDED.state, allocations = EXCLUDED.allocations, relayed_bps = EXCLUDED.relayed_bps, cpu = "
    "EXCLUDED.cpu "
    "RETURNING desired_state, extract(epoch FROM drain_deadline - now())";

// Live nodes only (down ones are never handed out); bounded so a huge table cannot swamp the loop.
constexpr char kFleet[] =
    "SELECT id, status, urls::text, addresses::text, allocations, relayed_bps, cpu FROM node_status "
    "WHERE status <> 'down' ORDER BY id LIMIT 256";

// The node's sessions, replaced in one statement: upserted, and the node's other rows deleted
// (disjoint rows, so the two sub-statements cannot collide). Times are on the database's clock:
// expiry and start are now() plus or minus what the node measured on its steady clock.
constexpr char kSessions[] =
    "WITH s AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(id text, \"user\" text, client text, "
    "transport text, relayed text, permissions integer, expires_in integer, age_ms bigint, bytes_in bigint, "
    "bytes_out bigint)), "
    "up AS (INSERT INTO sessions (node, id, username, client, transport, relayed, permissions, expires_at, "
    "started_at, bytes_in, bytes_out, updated_at) "
    "SELECT $1, id, \"user\", client, transport, relayed, permissions, now() + make_interval(secs => expires_in), "
    "now() - make_interval(secs => age_ms / 1000.0), bytes_in, bytes_out, now() "
    "FROM s ON CONFLICT (node, id) DO UPDATE SET username = EXCLUDED.username, client = EXCLUDED.client, "
    "transport = EXCLUDED.transport, relayed = EXCLUDED.relayed, permissions = EXCLUDED.permissions, "
    "expires_at = EXCLUDED.expires_at, started_at = EXCLUDED.started_at, bytes_in = EXCLUDED.bytes_in, "
    "bytes_out = EXCLUDED.bytes_out, updated_at = now()), "
    "del AS (DELETE FROM sessions WHERE node = $1 AND id NOT IN (SELECT id FROM s)) "
    "SELECT count(*) FROM s";

// The other live nodes' allocations per username, for the fleet-wide quota: bounded, and the
// largest first, so a cut drops the users with the fewest allocations.
constexpr char kUserCounts[] =
    "SELECT s.username, count(*) FROM sessions s JOIN node_status n ON n.id = s.node "
    "WHERE s.node <> $1 AND n.status <> 'down' AND s.expires_at > now() "
    "GROUP BY s.username ORDER BY count(*) DESC, s.username LIMIT 100000";

constexpr char kChannel[] = "ferry_nodes";
constexpr char kKillChannel[] = "ferry_kill";

std::string fixed(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

NodeRegistry::NodeRegistry(uv_loop_t* loop, NodeRegistrySettings settings, Hooks hooks)
    : loop_(loop), settings_(std::move(settings)), hooks_(std::move(hooks)) {
  db::PgPoolOptions po;
  po.conninfo = settings_.conninfo;
  po.size = 1;
  po.max_queue = 8;
  po.log = spdlog_logger();
  pool_ = std::make_unique<db::PgPool>(loop_, std::move(po));
  started_at_ = std::to_string(static_cast<long long>(std::time(nullptr)));
}

NodeRegistry::~NodeRegistry() {
  alive_.end();
  stop();
}

void NodeRegistry::start() {
  pool_->start();
  auto alive = alive_.watch();
  pool_->listen(
      {kChannel, kKillChannel},
      [this, alive](std::string_view channel, std::string_view payload) {
    if (alive.expired()) return;
    if (channel == kKillChannel) {
      if (hooks_.kill) hooks_.kill(payload);
      return;
    }
    if (payload != settings_.id) return;
    if (in_flight_) {
      again_ = true;
    } else {
      beat();
    }
      },
      // NOTIFYs sent while the LISTEN connection was down are lost: look at the row now instead
      // of at the next heartbeat.
      [this, alive](bool up) {
    if (up && !alive.expired() && !stopped_ && !in_flight_) beat();
  });
  timer_.init(loop_, this, uv_timer_init);
  const uint64_t ms = static_cast<uint64_t>(settings_.heartbeat_interval.count()) * 1000;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
    if (auto* self = UvHandle<uv_timer_t>::owner_of<NodeRegistry>(t); self != nullptr && !self->in_flight_)
      self->beat();
      },
      0, ms);
}

void NodeRegistry::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.close();
  if (pool_) pool_->stop();
}

void NodeRegistry::beat() {
  if (stopped_) return;
  const NodeReport rep = hooks_.report ? hooks_.report() : NodeReport{};
  if (hooks_.collect) hooks_.collect();  // the workers walk while the upsert travels
  db::Query q;
  q.name = "ferry_node_upsert";
  q.sql = kUpsert;
  q.params = {settings_.id,
              urls_json(settings_.urls),
              addresses_json(settings_.addresses),
              settings_.version,
              started_at_,
              std::to_string(settings_.heartbeat_interval.count()),
              std::string(rep.draining ? "draining" : "active"),
              std::to_string(rep.allocations),
              fixed(rep.relayed_bps),
              fixed(rep.cpu)};
  auto alive = alive_.watch();
  in_flight_ = true;
  auto submitted = pool_->query(std::move(q), [this, alive](db::QueryResult r) {
    if (!alive.expired()) on_upsert(std::move(r));
  });
  if (submitted != db::PgPool::Submit::Queued) {
    in_flight_ = false;
    again_ = false;
    if (hooks_.fleet) hooks_.fleet({});
  }
}

void NodeRegistry::on_upsert(db::QueryResult r) {
  if (!r.ok()) {
    if (!warned_) {
      if (r.sqlstate == "42P01")
        spdlog::warn("node registry: no nodes table in the database (run `ferryctl db migrate`)");
      else spdlog::warn("node registry: heartbeat failed: {}", r.error);
      warned_ = true;
    }
    if (hooks_.fleet) hooks_.fleet({});
    finish_beat();
    return;
  }
  if (warned_) spdlog::info("node registry: heartbeats go through again");
  warned_ = false;
  if (r.rows() == 1 && hooks_.directive) {
    NodeDirective d;
    d.drain = r.value(0, 0) == "draining";
    if (!r.is_null(0, 1)) d.deadline_in = std::strtod(std::string(r.value(0, 1)).c_str(), nullptr);
    hooks_.directive(d);
  }
  std::optional<std::string> sessions = hooks_.sessions ? hooks_.sessions() : std::nullopt;
  if (!sessions) {
    read_fleet();
    return;
  }
  db::Query sq;
  sq.name = "ferry_node_sessions";
  sq.sql = kSessions;
  sq.params = {settings_.id, std::move(*sessions)};
  sq.retry_on_connection_loss = false;
  auto alive = alive_.watch();
  auto submitted = pool_->query(std::move(sq), [this, alive](db::QueryResult sr) {
    if (alive.expired()) return;
    if (!sr.ok() && !warned_sessions_) {
      // 42703: a column this version writes is missing (age and bytes came with migration 0007).
      spdlog::warn("node registry: could not write this node's sessions: {}{}", sr.error,
                   sr.sqlstate == "42703" ? " (run `ferryctl db migrate`)" : "");
      warned_sessions_ = true;
    } else if (sr.ok()) {
      warned_sessions_ = false;
    }
    read_fleet();
  });
  if (submitted != db::PgPool::Submit::Queued) read_fleet();
}

void NodeRegistry::read_fleet() {
  db::Query q;
  q.name = "ferry_node_fleet";
  q.sql = kFleet;
  auto alive = alive_.watch();
  auto submitted = pool_->query(std::move(q), [this, alive](db::QueryResult fr) {
    if (!alive.expired()) on_fleet(std::move(fr));
  });
  if (submitted != db::PgPool::Submit::Queued) {
    if (hooks_.fleet) hooks_.fleet({});
    finish_beat();
  }
}

void NodeRegistry::on_fleet(db::QueryResult r) {
  std::vector<FleetNode> nodes;
  if (r.ok()) {
    for (int i = 0; i < r.rows(); ++i) {
      FleetNode n;
      n.id = std::string(r.value(i, 0));
      n.status = std::string(r.value(i, 1));
      n.urls = parse_urls_json(r.value(i, 2));
      n.addresses = parse_addresses_json(r.value(i, 3));
      n.allocations = std::strtoll(std::string(r.value(i, 4)).c_str(), nullptr, 10);
      n.relayed_bps = std::strtod(std::string(r.value(i, 5)).c_str(), nullptr);
      n.cpu = std::strtod(std::string(r.value(i, 6)).c_str(), nullptr);
      nodes.push_back(std::move(n));
    }
  }
  if (hooks_.fleet) hooks_.fleet(nodes);
  read_user_counts();
}

void NodeRegistry::read_user_counts() {
  if (!hooks_.user_counts) {
    finish_beat();
    return;
  }
  db::Query q;
  q.name = "ferry_node_user_counts";
  q.sql = kUserCounts;
  q.params = {settings_.id};
  auto alive = alive_.watch();
  auto submitted = pool_->query(std::move(q), [this, alive](db::QueryResult r) {
    if (alive.expired()) return;
    turn::UserCounts counts;
    if (r.ok()) {
      counts.reserve(static_cast<size_t>(r.rows()));
      for (int i = 0; i < r.rows(); ++i)
        counts[std::string(r.value(i, 0))] = std::strtoull(std::string(r.value(i, 1)).c_str(), nullptr, 10);
    }
    hooks_.user_counts(std::move(counts));
    finish_beat();
  });
  if (submitted != db::PgPool::Submit::Queued) {
    hooks_.user_counts({});
    finish_beat();
  }
}

void NodeRegistry::finish_beat() {
  in_flight_ = false;
  if (again_) {
    again_ = false;
    beat();
  }
}

}  // namespace ferry::server
