// docs/ATTRIBUTES.md lists every attribute type ferry knows with where it is handled: this test
// keeps the table and stun/constants.h in step (every known type is a row with its name, every row
// is a known type, and every row names a place).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "stun/constants.h"

namespace {

using namespace ferry::stun;

struct Row {
  std::string name, rfc, where;
};

std::map<uint32_t, Row> table_rows() {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/ATTRIBUTES.md");
  EXPECT_TRUE(in.good()) << "docs/ATTRIBUTES.md missing";
  std::map<uint32_t, Row> rows;
  const std::regex row(R"(^\| 0x([0-9A-Fa-f]{4}) \| ([A-Z0-9-]+) \| ([^|]+) \| (.+) \|$)");
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, row)) continue;
    const uint32_t type = std::stoul(m[1].str(), nullptr, 16);
    EXPECT_FALSE(rows.count(type)) << "0x" << m[1] << " listed twice";
    rows[type] = Row{m[2].str(), m[3].str(), m[4].str()};
  }
  return rows;
}

TEST(AttributesDoc, EveryKnownAttributeIsListedAndViceVersa) {
  const auto rows = table_rows();
  size_t known = 0;
  for (uint32_t t = 0; t <= 0xFFFF; ++t) {
    const auto type = static_cast<uint16_t>(t);
    if (!attr::known(type)) continue;
    ++known;
    auto it = rows.find(t);
    if (it == rows.end()) {
      ADD_FAILURE() << attr::name(type) << " (0x" << std::hex << t << ") is not in docs/ATTRIBUTES.md";
      continue;
    }
    EXPECT_EQ(it->second.name, attr::name(type)) << "0x" << std::hex << t;
  }
  for (const auto& [t, row] : rows) {
    EXPECT_TRUE(attr::known(static_cast<uint16_t>(t)))
        << row.name << " (0x" << std::hex << t << ") is in docs/ATTRIBUTES.md but not in stun/constants.h";
    EXPECT_NE(row.where.find('`'), std::string::npos) << row.name << ": say where it is handled";
  }
  EXPECT_EQ(rows.size(), known);
  EXPECT_GE(known, 36u);  // RFC 8489 + 8656 + 5780 + 6062 + 8016 as of this writing
}

// The RFC 8489 and RFC 8656 attributes, by the RFCs' own registries (RFC 8489 §18.3, RFC 8656
// §19): each must be known to the codec and so be in the table.
TEST(AttributesDoc, EveryRfc8489And8656AttributeIsKnown) {
  const uint16_t rfc8489[] = {0x0001, 0x0006, 0x0008, 0x0009, 0x000A, 0x0014, 0x0015, 0x001C,
                              0x001D, 0x001E, 0x0020, 0x8002, 0x8003, 0x8022, 0x8023, 0x8028};
  const uint16_t rfc8656[] = {0x000C, 0x000D, 0x0012, 0x0013, 0x0016, 0x0017, 0x0018,
                              0x0019, 0x001A, 0x0022, 0x8000, 0x8001, 0x8004};
  const auto rows = table_rows();
  for (uint16_t t : rfc8489) EXPECT_TRUE(attr::known(t) && rows.count(t)) << "RFC 8489 0x" << std::hex << t;
  for (uint16_t t : rfc8656) EXPECT_TRUE(attr::known(t) && rows.count(t)) << "RFC 8656 0x" << std::hex << t;
}

}  // namespace
