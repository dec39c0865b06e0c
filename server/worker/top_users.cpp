#include "server/worker/top_users.h"

namespace ferry::server {

std::vector<UserUsage> top_k_users(std::vector<UserUsage> per_user, size_t k) {
  // Sum entries of the same user (lists from several workers).
  // Keys view the names in `merged`, which never reallocates (reserved), so they stay valid.
  std::unordered_map<std::string_view, size_t> first;
  std::vector<UserUsage> merged;
  merged.reserve(per_user.size());
  for (auto& u : per_user) {
    if (auto it = first.find(u.user); it != first.end()) {
      merged[it->second].bytes += u.bytes;
      merged[it->second].allocations += u.allocations;
      continue;
    }
    merged.push_back(std::move(u));
    first.emplace(merged.back().user, merged.size() - 1);
  }
  auto heavier = [](const UserUsage& a, const UserUsage& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.user < b.user;
  };
  if (merged.size() > k) {
    std::partial_sort(merged.begin(), merged.begin() + static_cast<std::ptrdiff_t>(k), merged.end(), heavier);
    merged.resize(k);
  } else {
    std::sort(merged.begin(), merged.end(), heavier);
  }
  return merged;
}

}  // namespace ferry::server
