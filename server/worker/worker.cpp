#include "server/worker/worker.h"

namespace ferry::server {

namespace {
// The core's walk of its allocations is spread over kTickParts timer calls a second: with 5,000
// allocations one walk took 1-3 ms, a stall every packet arriving meanwhile waited out.
constexpr uint32_t kTickParts = 10;
constexpr uint64_t kTickMs = 1000 / kTickParts;
// Socket buffers of a UDP listener: every client of the worker shares it, so a burst of 128
// 1000-byte datagrams must fit (the default 208 KiB holds about 90). coturn uses the same size.
constexpr int kListenerBufferBytes = 4 * 1024 * 1024;
// How long a stopping worker waits for its last usage records to reach the database.
constexpr std::chrono::milliseconds kUsageFlushBudget{2000};

std::string describe(const ListenerConfig& l) {
  return std::string(to_string(l.transport)) + " " + l.address.to_string();
}
}  // namespace

Worker::Worker(WorkerSettings settings, const CredentialSettings& credentials) : settings_(std::move(settings)) {
  uv_loop_init(&loop_);
  uv_loop_configure(&loop_, UV_METRICS_IDLE_TIME);  // how long each turn waited, for on_check()
  using Async = UvHandle<uv_async_t>;
  stop_.init(&loop_, this, uv_async_init, [](uv_async_t* a) { Async::owner_of<Worker>(a)->on_stop(); });
  posted_.init(&loop_, this, uv_async_init, [](uv_async_t* a) { Async::owner_of<Worker>(a)->run_posted(); });
  credentials_ = std::make_unique<WorkerCredentials>(&loop_, clock_, credentials);
  usage_ = std::make_unique<WorkerUsage>(&loop_, clock_, credentials_->database_pool(), settings_.usage,
                                         settings_.core.realm);
  tick_.init(&loop_, this, uv_timer_init);
  prepare_.init(&loop_, this, uv_prepare_init);
  check_.init(&loop_, this, uv_check_init);
  stats_.heartbeat_ms.set(steady_ms(clock_));

  constexpr size_t head = turn::ServerCore::kPeerHeadroom;
  constexpr size_t tail = turn::ServerCore::kPeerTailroom;
  // Not zeroed: the pages stay untouched (out of RSS) until datagrams land in them.
  receive_buffer_ = std::make_unique_for_overwrite<uint8_t[]>(head + kReceiveBytes + tail);
  send_batch_ = std::make_unique<SendBatch>(receive_buffer_.get(), head + kReceiveBytes + tail);
  const ReceiveArea relay_area{receive_buffer_.get(), head + kReceiveBytes + tail, head, tail, send_batch_.get()};
  relays_ = std::make_unique<RelaySockets>(&loop_, clock_, relay_area, peer_receiver_);
  tcp_ = std::make_unique<TcpListener>(&loop_, clock_, static_cast<StreamHandler&>(*this), settings_.tcp, limiter_,
                                       connection_stats_);
  tcp_relays_ = std::make_unique<TcpRelays>(&loop_, clock_, *tcp_);
  if (settings_.fast_path) {
    fast_path_ = std::make_unique<fastpath::WorkerFastPath>(*settings_.fast_path);
    settings_.core.fast_path = true;
  }
  core_ = std::make_unique<turn::ServerCore>(settings_.core, clock_, *this, credentials_->store(), settings_.policy);
  tcp_relays_->set_core(core_.get());
}

Worker::~Worker() {
  // Handles first, so no close callback reaches the core; the core's own close_relay calls
  // on its way out then find empty slots.
  if (!handles_closed_) close_handles();
  core_.reset();
  usage_.reset();        // before the database pool it writes through
  credentials_.reset();  // closes its database handles; the loop run below frees them
  relays_.reset();
  dtls_.reset();
  tcp_relays_.reset();
  tcp_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);  // runs the close callbacks that free the handles
  uv_loop_close(&loop_);
}

SocketOptions Worker::listener_options() const {
  return SocketOptions{.reuse_port = settings_.reuse_port, .steer_by_ip_among = settings_.worker_count};
}

std::optional<std::string> Worker::bind() {
  const ReceiveArea client_area{receive_buffer_.get(), kReceiveBytes, 0, 0, send_batch_.get()};
  for (const ListenerConfig& l : settings_.listeners) {
    ListenerConfig bound = l;
    int rc = 0;
    if (l.transport == Transport::Udp) {
      SocketOptions options = listener_options();
      options.buffer_bytes = kListenerBufferBytes;
      UdpSocket* s = UdpSocket::open(&loop_, l.address, options, &rc);
      if (s != nullptr) {
        rc = s->start(client_area, static_cast<DatagramHandler&>(*this), 0);
        udp_listeners_.push_back(s);  // closed with the others, even if start failed
        bound.address = s->local();
      }
    } else if (l.transport == Transport::Tcp || l.transport == Transport::Tls) {
      const bool tls = l.transport == Transport::Tls;
      if (tls && !settings_.tls) return describe(l) + ": needs tls.cert and tls.key";
      std::optional<ProxySettings> proxy;
      if (l.proxy_protocol != ProxyProtocol::Off) {
        proxy.emplace();
        proxy->version = l.proxy_protocol == ProxyProtocol::V1 ? ProxyVersion::V1 : ProxyVersion::V2;
        for (const auto& text : l.trusted_proxies) {
          auto cidr = turn::Cidr::parse(text);
          if (!cidr) return describe(l) + ": trusted_proxies: not an address or prefix: " + text;
          proxy->trusted.push_back(*cidr);
        }
      }
      rc = tcp_->listen(l.address, listener_options(), tls ? turn::Transport::Tls : turn::Transport::Tcp, settings_.tls,
                        std::move(proxy));
      if (rc == 0) bound.address = tcp_->addresses().back();
    } else {  // DTLS: UDP sockets of their own, read into the same buffer
      if (!settings_.tls) return describe(l) + ": needs tls.cert and tls.key";
      if (!dtls_)
        dtls_ = std::make_unique<DtlsListener>(&loop_, clock_, static_cast<StreamHandler&>(*this), settings_.tls,
                                               settings_.tcp, limiter_, connection_stats_);
      rc = dtls_->listen(l.address, listener_options(), client_area);
      if (rc == 0) bound.address = dtls_->addresses().back();
    }
    if (rc != 0) return describe(l) + ": " + uv_strerror(rc);
    bound_.push_back(bound);
  }
  return std::nullopt;
}

void Worker::run() {
  if (!handles_closed_) {
    credentials_->start(*core_);
    usage_->start();
    if (auto* pool = credentials_->database_pool()) {
      pool->set_query_hook([&s = database_stats_](const db::QueryStats& q) { s.observe(q); });
    }
    stats_.heartbeat_ms.set(steady_ms(clock_));
    uv_timer_start(
        tick_.get(), [](uv_timer_t* t) { UvHandle<uv_timer_t>::owner_of<Worker>(t)->on_tick(); }, kTickMs, kTickMs);
    last_check_ = clock_.now();
    uv_prepare_start(prepare_.get(), [](uv_prepare_t* p) {
      if (auto* w = UvHandle<uv_prepare_t>::owner_of<Worker>(p)) w->on_prepare();
    });
    uv_check_start(check_.get(), [](uv_check_t* c) {
      if (auto* w = UvHandle<uv_check_t>::owner_of<Worker>(c)) w->on_check();
    });
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Worker::on_tick() {
  const uint32_t part = tick_count_++ % kTickParts;
  core_->tick(part, kTickParts);
  // What the kernel fast path relayed, once a second, before the usage walk, so records and the
  // top users include it (at most a second old).
  if (part == 0) harvest_fast_path();
  usage_->on_tick(*core_, part, kTickParts);
  if (part != 0) return;  // the rest once a second
  tcp_->sweep_idle();
  tcp_relays_->sweep();
  stats_.tcp_connections.set(static_cast<int64_t>(tcp_->connection_count(turn::Transport::Tcp)));
  stats_.tls_connections.set(static_cast<int64_t>(tcp_->connection_count(turn::Transport::Tls)));
  stats_.dtls_sessions.set(static_cast<int64_t>(dtls_ ? dtls_->session_count() : 0));
  stats_.tcp_frames_dropped.set(static_cast<int64_t>(tcp_->dropped_frames()));
  stats_.proxy_untrusted.set(static_cast<int64_t>(connection_stats_.proxy_untrusted.get()));
  stats_.proxy_bad_header.set(static_cast<int64_t>(connection_stats_.proxy_bad_header.get()));
  stats_.heartbeat_ms.set(steady_ms(clock_));
  if (const auto* pool = credentials_->database_pool()) {
    const size_t up = pool->connected_count();
    database_stats_.set_connections(
        up, credentials_->database_pool_size() > up ? credentials_->database_pool_size() - up : 0);
  }
}

void Worker::on_prepare() {
  // Since the last check: closing callbacks, then this turn's timers, pending and idle callbacks.
  last_prepare_ = clock_.now();
  stats_.loop_busy_timers.observe(std::chrono::duration_cast<std::chrono::microseconds>(last_prepare_ - last_check_));
  idle_ns_at_prepare_ = uv_metrics_idle_time(&loop_);
}

void Worker::on_check() {
  // Since prepare: the wait for I/O (the loop's idle time) and the I/O callbacks.
  last_check_ = clock_.now();
  const auto waited = std::chrono::nanoseconds(uv_metrics_idle_time(&loop_) - idle_ns_at_prepare_);
  stats_.loop_busy_io.observe(
      std::chrono::duration_cast<std::chrono::microseconds>(last_check_ - last_prepare_ - waited));
}

void Worker::post(std::function<void()> task) {
  std::lock_guard lock(posted_mutex_);
  if (posted_closed_) return;
  posted_tasks_.push_back(std::move(task));
  uv_async_send(posted_.get());  // under the lock: close_handles() cannot close the handle meanwhile
}

void Worker::run_posted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(posted_mutex_);
    tasks.swap(posted_tasks_);
  }
  for (auto& t : tasks) t();
}

void Worker::set_limits(const turn::ServerCoreConfig& limits) {
  post([this, limits] { core_->set_limits(limits); });
}

void Worker::set_draining(bool draining, std::optional<stun::TransportAddress> alternate) {
  post([this, draining, alternate] { core_->set_draining(draining, alternate); });
}

void Worker::set_remote_user_counts(turn::UserCounts counts) {
  post([this, counts = std::move(counts)]() mutable { core_->set_remote_user_counts(std::move(counts)); });
}

void Worker::collect_sessions(std::function<void(std::vector<SessionInfo>)> deliver) {
  post([this, deliver = std::move(deliver)] {
    std::vector<SessionInfo> out;
    out.reserve(core_->allocation_count());
    core_->for_each_allocation([&](const turn::Allocation& a) { out.push_back(session_info_of(a)); });
    deliver(std::move(out));
  });
}

void Worker::close_user_sessions(std::string user) {
  post([this, user = std::move(user)] {
    core_->close_if([&](const turn::Allocation& a) { return session_user_matches(a.username, user); });
  });
}

void Worker::close_relayed(stun::TransportAddress relayed) {
  post([this, relayed] {
    core_->close_if([&](const turn::Allocation& a) {
      return (a.v4 && a.v4->advertised == relayed) || (a.v6 && a.v6->advertised == relayed);
    });
  });
}

void Worker::close_all_allocations() {
  post([this] { core_->close_all(); });
}

void Worker::stop() {
  if (!stop_requested_.exchange(true)) uv_async_send(stop_.get());
}

void Worker::on_stop() {
  if (handles_closed_ || stopping_) return;
  stopping_ = true;
  harvest_fast_path();
  // The allocations still open end with the process: their usage records become final, and the
  // loop keeps running (a little) until they are written.
  usage_->finish(*core_);
  if (!usage_->drain(kUsageFlushBudget, [this] { close_handles(); })) close_handles();
}

void Worker::close_handles() {
  if (handles_closed_) return;
  handles_closed_ = true;
  usage_->stop();
  credentials_->stop();
  for (UdpSocket* s : udp_listeners_) s->close();
  udp_listeners_.clear();
  tcp_relays_->set_core(nullptr);  // no callbacks into the core from here on
  tcp_relays_->close_all();
  tcp_->close();
  if (dtls_) dtls_->close();
  relays_->close_all();
  tick_.close();
  prepare_.close();
  check_.close();
  stop_requested_ = true;  // a later stop() finds nothing to wake
  stop_.close();
  {
    std::lock_guard lock(posted_mutex_);
    posted_closed_ = true;
    posted_tasks_.clear();
  }
  posted_.close();
}

// ---- data path: no allocation, no lock, no syscall but the send ----------------------------------
// Relayed datagrams leave when the receive batch that brought them ends (SendBatch): one sendmmsg
// per socket per batch. Frames from a TCP/TLS client: when the frames of one read are handled
// (frames_begin/frames_end around TcpListener::consume).

void Worker::on_datagram(UdpSocket& socket, const stun::TransportAddress& from, uint8_t* storage, size_t len) {
  // The answer is built in the receive buffer after the request, so it joins the batch's sendmmsg.
  core_->on_client_packet(turn::FiveTuple{from, socket.local(), turn::Transport::Udp}, stun::Bytes(storage, len),
                          socket.scratch());
}

void Worker::PeerReceiver::on_datagram(UdpSocket& socket, const stun::TransportAddress& from, uint8_t* storage,
                                       size_t len) {
  worker.core_->on_peer_packet(socket.tag(), from, storage, len);
}

void Worker::on_frame(const turn::FiveTuple& from, stun::Bytes frame) { core_->on_client_packet(from, frame); }

void Worker::send_to_client(const turn::FiveTuple& to, stun::Bytes bytes) {
  if (turn::is_stream(to.transport)) {
    tcp_->send(to, bytes);  // counts its own drops
    return;
  }
  if (to.transport == turn::Transport::Dtls) {
    if (dtls_) dtls_->send(to, bytes);  // counts its own drops
    return;
  }
  for (UdpSocket* s : udp_listeners_) {
    if (s->local() == to.server) {
      s->send_relayed(to.client, bytes, stats_.client_send_dropped);
      return;
    }
  }
  stats_.client_send_dropped.add();
}

void Worker::send_to_peer(turn::RelayId relay, const stun::TransportAddress& peer, stun::Bytes bytes) {
  relays_->send_relayed(relay, peer, bytes, stats_.peer_send_dropped);
}

// ---- control path ---------------------------------------------------------------------------------

turn::OpenRelayResult Worker::open_relay(turn::RelayId relay, const stun::TransportAddress& local, bool dont_fragment) {
  if (handles_closed_) return turn::OpenRelayResult::NoResources;
  return relays_->open(relay, local, dont_fragment);
}

void Worker::close_relay(turn::RelayId relay) {
  relays_->close(relay);
  tcp_relays_->close_listener(relay);  // a relay id names a UDP socket or a TCP listener
}

turn::OpenRelayResult Worker::open_tcp_relay(turn::RelayId relay, const stun::TransportAddress& local) {
  if (handles_closed_) return turn::OpenRelayResult::NoResources;
  return tcp_relays_->open(relay, local);
}

bool Worker::connect_peer(turn::ConnectionId id, turn::RelayId relay, const stun::TransportAddress& peer) {
  if (handles_closed_) return false;
  return tcp_relays_->connect(id, relay, peer);
}

void Worker::bind_data_connection(turn::ConnectionId id, const turn::FiveTuple& client) {
  tcp_relays_->bind(id, client);
}

void Worker::close_peer_connection(turn::ConnectionId id) { tcp_relays_->close(id); }

void Worker::allocation_closed(const turn::FiveTuple& client) {
  if (turn::is_stream(client.transport)) tcp_->close_connection(client);
}

void Worker::allocation_ended(const turn::Allocation& a) { usage_->allocation_ended(a); }

void Worker::fast_path_install(const turn::FastPathChannel& c) {
  if (fast_path_) fast_path_->install(c);
}

turn::FastPathUsage Worker::fast_path_remove(const turn::FiveTuple& client, uint16_t channel) {
  return fast_path_ ? fast_path_->remove(client, channel) : turn::FastPathUsage{};
}

void Worker::harvest_fast_path() {
  if (!fast_path_) return;
  fast_path_->harvest(
      [this](const turn::FiveTuple& client, const turn::FastPathUsage& u) { core_->add_fast_path_usage(client, u); });
}

void Worker::on_closed(const turn::FiveTuple& client) { core_->on_client_closed(client); }

bool Worker::holds_allocation(const turn::FiveTuple& client) const { return core_->find_allocation(client) != nullptr; }

}  // namespace ferry::server
