// The operations HTTP listener (http.address): cpp-httplib on 4 threads of its own, serving an
// OpsApi. It never touches a worker loop: handlers read atomics the workers publish and post
// requests to them through Worker::post.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "server/ops/ops_api.h"
#include "stun/transport_address.h"

namespace httplib {
class Server;
}

namespace ferry::server {

class HttpServer {
 public:
  explicit HttpServer(const OpsApi& api);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving; on failure "http 127.0.0.1:9641: Address already in use".
  std::optional<std::string> start(const stun::TransportAddress& address);
  // Stops serving and joins the threads. Idempotent.
  void stop();
  uint16_t port() const { return port_; }

 private:
  const OpsApi& api_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace ferry::server
