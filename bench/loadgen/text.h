// String building without chained operator+ (gcc 12 -Wrestrict false positives) .
#pragma once

#include <string>
#include <string_view>

namespace ferry::bench {

template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

}  // namespace ferry::bench
