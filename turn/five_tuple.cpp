#include "turn/five_tuple.h"

#include <algorithm>

namespace ferry::turn {

std::string FiveTuple::to_string() const {
  return std::string(turn::to_string(transport)) + " " + client.to_string() + " -> " + server.to_string();
}

size_t FiveTuple::encode(uint8_t* out) const {
  size_t n = 0;
  out[n++] = static_cast<uint8_t>(transport);
  for (const auto* a : {&client, &server}) {
    out[n++] = static_cast<uint8_t>(a->family);
    out[n++] = static_cast<uint8_t>(a->port >> 8);
    out[n++] = static_cast<uint8_t>(a->port);
    std::copy_n(a->ip.begin(), a->ip_size(), out + n);
    n += a->ip_size();
  }
  return n;
}

}  // namespace ferry::turn
