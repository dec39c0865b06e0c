// Shared helpers for tests that read ../shared/testvectors: JSON loading and hex conversion.
// Header-only; every tests/unit/*_test.cpp is linked into one binary, so everything here is inline.
//
// FERRY_TESTVECTORS_DIR is a compile definition (tests/CMakeLists.txt) naming the directory. A missing
// directory or file throws, which GoogleTest reports as a failed test: the vector tests must never be
// skipped silently because the data is not where we expect it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "stun/bytes.h"

#ifndef FERRY_TESTVECTORS_DIR
#error "FERRY_TESTVECTORS_DIR must be defined (tests/CMakeLists.txt points it at ../shared/testvectors)"
#endif

namespace ferry::testing {

using json = nlohmann::json;

inline std::filesystem::path vectors_dir() {
  std::filesystem::path dir(FERRY_TESTVECTORS_DIR);
  if (!std::filesystem::is_directory(dir)) {
    throw std::runtime_error("test vector directory missing: " + dir.string() +
                             " (FERRY_TESTVECTORS_DIR; expected ../shared/testvectors)");
  }
  return dir;
}

inline std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Loads `name` (e.g. "rfc5769.json") from the vector directory; throws when missing or malformed.
inline json load_json(const std::string& name) {
  const auto path = vectors_dir() / name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("test vector file missing: " + path.string());
  json j = json::parse(in, nullptr, /*allow_exceptions=*/true);
  return j;
}

// The "vectors" array of a vector file; throws when the file has none.
inline json load_vectors(const std::string& name) {
  json j = load_json(name);
  if (!j.contains("vectors") || !j["vectors"].is_array() || j["vectors"].empty()) {
    throw std::runtime_error(name + " has no \"vectors\" array");
  }
  return j["vectors"];
}

inline int hex_nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "0a1B" -> {0x0a, 0x1b}; throws on odd length or a non-hex character.
inline std::vector<uint8_t> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) throw std::runtime_error("odd-length hex: " + std::string(hex));
  std::vector<uint8_t> out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_nibble(hex[i]), lo = hex_nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) throw std::runtime_error("bad hex: " + std::string(hex));
    out.push_back(static_cast<uint8_t>((hi << 4) | lo));
  }
  return out;
}

inline std::string to_hex(stun::Bytes b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) {
    s += kDigits[c >> 4];
    s += kDigits[c & 0xF];
  }
  return s;
}

// "0x0020" / "0020" / "0x1c" -> number; throws on garbage.
inline uint32_t parse_hex_number(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  if (s.empty()) throw std::runtime_error("empty hex number");
  uint32_t v = 0;
  for (char c : s) {
    const int n = hex_nibble(c);
    if (n < 0) throw std::runtime_error("bad hex number: " + std::string(s));
    v = (v << 4) | static_cast<uint32_t>(n);
  }
  return v;
}

inline stun::Bytes as_bytes(const std::vector<uint8_t>& v) { return stun::Bytes(v.data(), v.size()); }
inline stun::Bytes as_bytes(std::string_view s) {
  return stun::Bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace ferry::testing
