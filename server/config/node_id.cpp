#include "server/config/node_id.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace ferry::server {

namespace {
bool id_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; }
constexpr size_t kMaxId = 64;
}  // namespace

bool valid_node_id(std::string_view id) {
  return !id.empty() && id.size() <= kMaxId && std::all_of(id.begin(), id.end(), id_char);
}

std::string derive_node_id(std::string_view hostname, const std::vector<ListenerConfig>& listeners) {
  std::string host;
  for (char c : hostname) host += id_char(c) ? c : '-';
  if (host.empty()) host = "ferry";
  if (listeners.empty()) return host.substr(0, kMaxId);
  std::string suffix(1, '-');
  suffix.append(std::to_string(listeners.front().address.port));
  host.resize(std::min(host.size(), kMaxId - suffix.size()));
  host.append(suffix);
  return host;
}

std::string resolved_node_id(const Config& config) {
  if (!config.node.id.empty()) return config.node.id;
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) name[0] = '\0';
  return derive_node_id(name, config.listeners);
}

}  // namespace ferry::server
