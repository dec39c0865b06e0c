// One event loop and everything on it: a ServerCore, the listeners, the relay sockets and the
// timer that walks the core's allocations (a tenth every 100 ms). The Worker is the core's Io.
// Workers share nothing on the data path: each has its own SO_REUSEPORT listeners, relay port
// range, credential store and receive buffer.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "server/config/config.h"
#include "server/fastpath/kernel_fast_path.h"
#include "server/fastpath/worker_fast_path.h"
#include "server/net/connection_limits.h"
#include "server/net/dtls_listener.h"
#include "server/worker/database_stats.h"
#include "server/relay/relay_sockets.h"
#include "server/net/send_batch.h"
#include "server/worker/session_info.h"
#include "server/worker/shell_stats.h"
#include "server/net/tcp_listener.h"
#include "server/relay/tcp_relays.h"
#include "server/tls/tls_context.h"
#include "server/net/udp_socket.h"
#include "server/net/uv_handle.h"
#include "server/worker/worker_credentials.h"
#include "server/worker/worker_usage.h"
#include "base/clock.h"
#include "turn/server_core.h"
#include "turn/server_stats.h"

namespace ferry::server {

struct WorkerSettings {
  turn::ServerCoreConfig core;  // with this worker's share of the relay port range
  turn::PeerPolicy policy;
  std::vector<ListenerConfig> listeners;  // udp, tcp, tls and dtls
  bool reuse_port = false;                // set when several workers listen on the same ports
  uint32_t worker_count = 1;              // listeners steer clients by source IP among this many
  TcpLimits tcp;                          // TCP and TLS connections and DTLS sessions
  std::shared_ptr<TlsCertificates> tls;   // for tls and dtls listeners; shared by all workers
  UsageSettings usage;                    // usage records (with a database) and per-user metrics
  // data_path kernel (or auto, loaded): the process's kernel fast path, shared by the workers;
  // null relays everything in user space.
  std::shared_ptr<fastpath::KernelFastPath> fast_path;
};

class Worker final : public turn::Io, private DatagramHandler, private StreamHandler {
 public:
  Worker(WorkerSettings settings, const CredentialSettings& credentials);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Binds every listener. On failure: "udp 0.0.0.0:3478: address already in use".
  std::optional<std::string> bind();
  // The listeners as bound (the real port where port 0 was asked for), in configuration order.
  const std::vector<ListenerConfig>& bound_listeners() const { return bound_; }

  // Runs the loop on the calling thread until stop().
  void run();
  // From any thread: closes every socket and makes run() return. With a database, the usage
  // records of the allocations still open are made final and written first (at most 2 s).
  void stop();
  // From any thread: new static users and secrets, applied on the loop thread.
  void reload_credentials(std::shared_ptr<const CredentialSettings> settings) {
    post([this, settings] { credentials_->reload(*settings); });
  }

  // From any thread: runs `task` on this worker's loop thread soon (control path: a mutex and a
  // uv_async, never on the data path). Dropped once the worker is stopping.
  void post(std::function<void()> task);
  // From any thread: ServerCore::set_draining on the loop thread.
  void set_draining(bool draining, std::optional<stun::TransportAddress> alternate);
  // From any thread: ServerCore::close_all on the loop thread (a fleet drain's deadline).
  void close_all_allocations();
  // From any thread: `deliver` runs on the loop thread with this worker's live allocations.
  void collect_sessions(std::function<void(std::vector<SessionInfo>)> deliver);
  // From any thread: closes the allocations of `user` (session_user_matches) on the loop thread.
  void close_user_sessions(std::string user);
  // From any thread: closes the allocation with this relayed address, if this worker has it.
  void close_relayed(stun::TransportAddress relayed);
  // From any thread: ServerCore::set_remote_user_counts on the loop thread (this worker's own copy).
  void set_remote_user_counts(turn::UserCounts counts);
  // From any thread: ServerCore::set_limits on the loop thread (a reload).
  void set_limits(const turn::ServerCoreConfig& limits);

  const turn::ServerCore& core() const { return *core_; }
  const ShellStats& stats() const { return stats_; }
  // Written on this worker's loop only (PgPool's query hook and connection state), read by the scrape.
  DatabaseStats& database_stats() { return database_stats_; }
  const DatabaseStats& database_stats() const { return database_stats_; }
  uint64_t tcp_dropped_frames() const { return tcp_->dropped_frames(); }
  uint64_t dtls_dropped_frames() const { return dtls_ ? dtls_->dropped_frames() : 0; }
  const ConnectionStats& connection_stats() const { return connection_stats_; }
  // Usage records, the allocation-duration histogram and the top users (read by the scrape).
  const WorkerUsage& usage() const { return *usage_; }

  // turn::Io
  void send_to_client(const turn::FiveTuple& to, stun::Bytes bytes) override;
  void send_to_peer(turn::RelayId relay, const stun::TransportAddress& peer, stun::Bytes bytes) override;
  turn::OpenRelayResult open_relay(turn::RelayId relay, const stun::TransportAddress& local,
                                   bool dont_fragment) override;
  void close_relay(turn::RelayId relay) override;
  void allocation_closed(const turn::FiveTuple& client) override;
  void allocation_ended(const turn::Allocation& a) override;
  turn::OpenRelayResult open_tcp_relay(turn::RelayId relay, const stun::TransportAddress& local) override;
  bool connect_peer(turn::ConnectionId id, turn::RelayId relay, const stun::TransportAddress& peer) override;
  void bind_data_connection(turn::ConnectionId id, const turn::FiveTuple& client) override;
  void close_peer_connection(turn::ConnectionId id) override;
  void fast_path_install(const turn::FastPathChannel& c) override;
  turn::FastPathUsage fast_path_remove(const turn::FiveTuple& client, uint16_t channel) override;

 private:
  // Peer datagrams arrive here; client datagrams go to the Worker's own on_datagram.
  struct PeerReceiver final : DatagramHandler {
    explicit PeerReceiver(Worker& w) : worker(w) {}
    void on_datagram(UdpSocket& socket, const stun::TransportAddress& from, uint8_t* storage, size_t len) override;
    void on_receive_error(UdpSocket&, int) override { worker.stats_.receive_errors.add(); }
    Worker& worker;
  };

  // DatagramHandler (UDP listeners)
  void on_datagram(UdpSocket& socket, const stun::TransportAddress& from, uint8_t* storage, size_t len) override;
  void on_receive_error(UdpSocket&, int) override { stats_.receive_errors.add(); }
  // StreamHandler (TCP, TLS and DTLS)
  void on_frame(const turn::FiveTuple& from, stun::Bytes frame) override;
  void frames_begin(stun::Bytes buffer) override { send_batch_->lend(buffer); }
  void frames_end() override { send_batch_->end_lend(); }
  void on_closed(const turn::FiveTuple& client) override;
  bool holds_allocation(const turn::FiveTuple& client) const override;

  void on_stop();        // on the loop thread: final usage records, then close_handles()
  void close_handles();  // on the loop thread
  void run_posted();     // on the loop thread
  void on_tick();
  void harvest_fast_path();  // what the kernel relayed since the last call, into the core's counters
  void on_prepare();         // the loop is about to wait for I/O
  void on_check();           // the I/O callbacks of this turn have run
  SocketOptions listener_options() const;

  uv_loop_t loop_{};
  // Closed by close_handles(), before the loop's last run in the destructor.
  UvHandle<uv_async_t> stop_;
  UvHandle<uv_async_t> posted_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_tasks_;  // guarded by posted_mutex_
  bool posted_closed_ = false;                       // guarded by posted_mutex_
  UvHandle<uv_timer_t> tick_;
  uint32_t tick_count_ = 0;
  // The loop turn measurement (ShellStats::loop_busy_*): two clock reads and the loop's idle-time
  // counter per turn, nothing per packet.
  UvHandle<uv_prepare_t> prepare_;
  UvHandle<uv_check_t> check_;
  Instant last_prepare_{};
  Instant last_check_{};
  uint64_t idle_ns_at_prepare_ = 0;
  bool handles_closed_ = false;
  bool stopping_ = false;  // on_stop() ran: waiting for the usage records, then closing
  std::atomic<bool> stop_requested_{false};

  WorkerSettings settings_;
  SteadyClock clock_;
  std::unique_ptr<WorkerCredentials> credentials_;
  std::unique_ptr<WorkerUsage> usage_;  // writes through credentials_' database pool, if any
  // One receive buffer for every socket of this loop, with the core's framing margins; large
  // enough for a full recvmmsg batch (1.25 MiB per loop).
  static constexpr size_t kReceiveBytes = UdpSocket::kBatchReceiveBytes;
  std::unique_ptr<uint8_t[]> receive_buffer_;
  std::unique_ptr<SendBatch> send_batch_;  // relayed datagrams of the batch being handled
  PeerReceiver peer_receiver_{*this};
  std::unique_ptr<RelaySockets> relays_;
  ConnectionStats connection_stats_;
  ConnectionLimiter limiter_{settings_.tcp};  // shared by tcp_ and dtls_
  std::unique_ptr<TcpListener> tcp_;
  std::unique_ptr<TcpRelays> tcp_relays_;  // RFC 6062: peer sides of TCP allocations
  std::unique_ptr<DtlsListener> dtls_;     // made by bind() when a dtls listener is configured
  std::vector<UdpSocket*> udp_listeners_;
  std::vector<ListenerConfig> bound_;
  std::unique_ptr<fastpath::WorkerFastPath> fast_path_;  // this loop's kernel entries; outlives core_
  std::unique_ptr<turn::ServerCore> core_;
  ShellStats stats_;
  DatabaseStats database_stats_;
};

}  // namespace ferry::server
