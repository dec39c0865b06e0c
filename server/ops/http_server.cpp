#include "server/ops/http_server.h"

#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace ferry::server {

namespace {
// Scrapes, probes and the odd ICE-servers call: little work each. But a kept-alive connection
// holds its thread while it waits for the next request (up to the keep-alive timeout), so a
// scraper's idle connection must not leave a liveness probe queued past its own timeout.
constexpr size_t kThreads = 4;
}  // namespace

HttpServer::HttpServer(const OpsApi& api) : api_(api) {}

HttpServer::~HttpServer() { stop(); }

std::optional<std::string> HttpServer::start(const stun::TransportAddress& address) {
  server_ = std::make_unique<httplib::Server>();
  auto& s = *server_;
  s.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  // Small requests only, and nobody may hold a thread for long.
  s.set_payload_max_length(4096);
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_max_count(20);
  s.set_keep_alive_timeout(2);
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    OpsRequest r;
    r.method = req.method;
    r.path = req.path;
    for (const auto& [k, v] : req.params) r.query.emplace(k, v);  // emplace keeps the first
    r.authorization = req.get_header_value("Authorization");
    OpsResponse out = api_.handle(r);
    res.status = out.status;
    for (auto& [k, v] : out.headers) res.set_header(k, v);
    if (out.status != 204) res.set_content(std::move(out.body), out.content_type);
  };
  s.Get(".*", handler);
  s.Post(".*", handler);
  s.Put(".*", handler);
  s.Delete(".*", handler);
  s.Options(".*", handler);

  const std::string where = "http " + address.to_string();
  errno = 0;
  if (!s.bind_to_port(address.ip_string(), address.port)) {
    const int e = errno;
    server_.reset();
    return where + ": " + (e != 0 ? std::strerror(e) : "cannot listen");
  }
  port_ = address.port;
  thread_ = std::thread([&s] { s.listen_after_bind(); });
  // stop() only works on a running server: wait for the loop to start (it does at once).
  for (int i = 0; i < 2000 && !s.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return std::nullopt;
}

void HttpServer::stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace ferry::server
