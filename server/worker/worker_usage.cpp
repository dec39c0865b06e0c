#include "server/worker/worker_usage.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace ferry::server {

namespace {

db::LogFn usage_logger() {
  return [](db::LogLevel level, std::string_view msg) {
    switch (level) {
      case db::LogLevel::Debug: spdlog::debug("usage: {}", msg); break;
      case db::LogLevel::Info: spdlog::info("usage: {}", msg); break;
      case db::LogLevel::Warn: spdlog::warn("usage: {}", msg); break;
      case db::LogLevel::Error: spdlog::error("usage: {}", msg); break;
    }
  };
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

WorkerUsage::WorkerUsage(uv_loop_t* loop, const Clock& clock, db::PgPool* pool, UsageSettings settings,
                         std::string realm)
    : clock_(clock), settings_(std::move(settings)), realm_(std::move(realm)), pool_(pool), loop_(loop) {
  if (pool != nullptr) {
    db::UsageWriterOptions o;
    o.capacity = settings_.queue_size;
    o.flush_interval = settings_.flush_interval;
    o.log = usage_logger();
    writer_ = std::make_unique<db::UsageWriter>(loop, *pool, std::move(o));
  }
}

void WorkerUsage::start() {
  if (writer_) writer_->start();
}

void WorkerUsage::stop() {
  if (writer_) writer_->stop();
  if (drain_timer_ != nullptr) {
    drain_timer_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(drain_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    drain_timer_ = nullptr;
  }
}

void WorkerUsage::finish(const turn::ServerCore& core) {
  if (!writer_) return;
  core.for_each_allocation([&](const turn::Allocation& a) { writer_->push(record_of(a, /*final=*/true)); });
}

bool WorkerUsage::drain(std::chrono::milliseconds budget, std::function<void()> done) {
  if (!writer_ || writer_->queue().empty() || pool_ == nullptr || !pool_->available() || drain_timer_ != nullptr)
    return false;
  drain_done_ = std::move(done);
  drain_deadline_ = std::chrono::steady_clock::now() + budget;
  drain_timer_ = new uv_timer_t{};
  uv_timer_init(loop_, drain_timer_);
  drain_timer_->data = this;
  writer_->flush();
  uv_timer_start(
      drain_timer_,
      [](uv_timer_t* t) {
    auto* self = static_cast<WorkerUsage*>(t->data);
    if (self == nullptr) return;
    self->writer_->flush();
    if (!self->writer_->queue().empty() && std::chrono::steady_clock::now() < self->drain_deadline_) return;
    if (!self->writer_->queue().empty())
      spdlog::warn("usage: {} records not written at exit", self->writer_->queue().size());
    auto done = std::move(self->drain_done_);
    done();  // may stop() this object's timers: nothing of `self` is touched after it
      },
      20, 20);
  return true;
}

std::string WorkerUsage::allocation_id(const turn::Allocation& a) const {
  return settings_.node_id + "/" + settings_.boot_id + "/" + std::to_string(settings_.worker) + "/" +
         std::to_string(a.usage.serial);
}

db::UsageRecord WorkerUsage::record_of(const turn::Allocation& a, bool final) const {
  using turn::Direction;
  using turn::idx;
  db::UsageRecord r;
  r.allocation_id = allocation_id(a);
  r.username = a.username;
  r.realm = realm_;
  r.node = settings_.node_id;
  r.transport = turn::to_string(a.tuple.transport);
  r.client = a.tuple.client.to_string();
  // Wall-clock times from the steady clock's age of the allocation: a clock step does not skew it.
  const int64_t now_ms = unix_ms_now();
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - a.usage.started).count();
  r.started_unix_ms = now_ms - age;
  r.ended_unix_ms = now_ms;
  r.final = final;
  r.bytes_in = a.usage.bytes[idx(Direction::ClientToPeer)];
  r.bytes_out = a.usage.bytes[idx(Direction::PeerToClient)];
  r.packets_in = a.usage.packets[idx(Direction::ClientToPeer)];
  r.packets_out = a.usage.packets[idx(Direction::PeerToClient)];
  r.peers = a.usage.peers();
  r.peer_list.reserve(a.usage.peer_list.size());
  for (const auto& p : a.usage.peer_list) r.peer_list.push_back(p.ip_string());
  return r;
}

void WorkerUsage::allocation_ended(const turn::Allocation& a) {
  duration_.observe(std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - a.usage.started));
  if (writer_) writer_->push(record_of(a, /*final=*/true));
}

void WorkerUsage::on_tick(const turn::ServerCore& core, uint32_t part, uint32_t parts) {
  const bool interim = writer_ != nullptr;
  const bool want_top = settings_.top_users != 0;
  if (!interim && !want_top) return;
  if (parts == 0) parts = 1;
  part %= parts;
  // Interim records, spread over the interval: this round (a second), the allocations whose serial
  // falls in its slot (one in `interval` of them), if they are older than an interval. Each live
  // allocation is so written once per interval. The walk itself is spread over the round's parts:
  // 10,000 allocations walked at once held the loop for milliseconds, a stall every packet
  // arriving meanwhile waited out.
  const uint64_t slots = std::max<uint64_t>(1, static_cast<uint64_t>(settings_.interval.count()));
  if (part == 0) {
    slot_ = rounds_++ % slots;
    for (auto& [name, sum] : per_user_) sum = Sum{};
  }
  const Instant now = clock_.now();
  core.for_each_allocation_in_part(part, parts, [&](const turn::Allocation& a) {
    if (interim && a.usage.serial % slots == slot_ && now - a.usage.started >= settings_.interval)
      writer_->push(record_of(a, /*final=*/false));
    if (want_top) {
      auto it = per_user_.find(std::string_view(a.username));
      if (it == per_user_.end()) it = per_user_.emplace(a.username, Sum{}).first;
      it->second.bytes += a.usage.bytes[0] + a.usage.bytes[1];
      ++it->second.allocations;
    }
  });
  if (!want_top || part != parts - 1) return;
  std::erase_if(per_user_, [](const auto& kv) { return kv.second.allocations == 0; });  // gone users
  // Only the k heaviest are copied out.
  std::vector<std::pair<std::string_view, Sum>> all(per_user_.begin(), per_user_.end());
  const size_t k = std::min(settings_.top_users, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                    [](const auto& x, const auto& y) {
    return x.second.bytes != y.second.bytes ? x.second.bytes > y.second.bytes : x.first < y.first;
  });
  std::vector<UserUsage> top;
  top.reserve(k);
  for (size_t i = 0; i < k; ++i)
    top.push_back({std::string(all[i].first), all[i].second.bytes, all[i].second.allocations});
  top_.publish(std::move(top));
}

}  // namespace ferry::server
