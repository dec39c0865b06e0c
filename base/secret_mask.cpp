#include "base/secret_mask.h"

#include <algorithm>
#include <cctype>

namespace ferry {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string mask_conninfo(std::string_view conninfo) {
  std::string s(conninfo);
  // URI form: scheme://user:password@host...
  if (auto scheme = s.find("://"); scheme != std::string::npos) {
    auto auth_start = scheme + 3;
    auto at = s.find('@', auth_start);
    auto slash = s.find('/', auth_start);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      auto colon = s.find(':', auth_start);
      if (colon != std::string::npos && colon < at) s.replace(colon + 1, at - colon - 1, kMasked);
    }
  }
  // password=... in a key=value string or a URI query.
  std::string out;
  size_t i = 0;
  auto l = lower(s);
  while (i < s.size()) {
    auto pos = l.find("password", i);
    if (pos == std::string::npos) {
      out += s.substr(i);
      break;
    }
    size_t j = pos + 8;
    while (j < s.size() && s[j] == ' ') ++j;
    bool at_word_start = pos == 0 || s[pos - 1] == ' ' || s[pos - 1] == '?' || s[pos - 1] == '&';
    if (!at_word_start || j >= s.size() || s[j] != '=') {
      out += s.substr(i, pos + 8 - i);
      i = pos + 8;
      continue;
    }
    ++j;
    while (j < s.size() && s[j] == ' ') ++j;
    out += s.substr(i, j - i);
    out += kMasked;
    if (j < s.size() && s[j] == '\'') {  // quoted value, \' escapes
      ++j;
      while (j < s.size() && s[j] != '\'') j += (s[j] == '\\') ? 2 : 1;
      j = std::min(j + 1, s.size());
    } else {
      while (j < s.size() && s[j] != ' ' && s[j] != '&') ++j;
    }
    i = j;
  }
  return out;
}

std::string scrub_conninfo(std::string message, std::string_view conninfo) {
  if (conninfo.empty()) return message;
  std::string masked = mask_conninfo(conninfo);
  for (size_t pos = 0; (pos = message.find(conninfo, pos)) != std::string::npos;) {
    message.replace(pos, conninfo.size(), masked);
    pos += masked.size();
  }
  return message;
}

}  // namespace ferry
