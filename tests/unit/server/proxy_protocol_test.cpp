// server/net/proxy_protocol: PROXY protocol v1 and v2 headers, whole, split at every byte, and
// malformed. The v2 bytes are the specification's layout, written out by hand.
#include "server/net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::server {
namespace {

stun::Bytes bytes(const std::string& s) { return stun::Bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
stun::Bytes bytes(const std::vector<uint8_t>& v) { return stun::Bytes(v.data(), v.size()); }

std::vector<uint8_t> v2(uint8_t ver_cmd, uint8_t fam, std::vector<uint8_t> body) {
  std::vector<uint8_t> out = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, ver_cmd, fam};
  out.push_back(static_cast<uint8_t>(body.size() >> 8));
  out.push_back(static_cast<uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// 192.0.2.7:40001 -> 198.51.100.1:3478
const std::vector<uint8_t> kV4Body = {192, 0, 2, 7, 198, 51, 100, 1, 0x9C, 0x41, 0x0D, 0x96};

TEST(ProxyProtocolTest, V1Tcp4) {
  const std::string h = "PROXY TCP4 192.0.2.7 198.51.100.1 40001 3478\r\n";
  auto p = parse_proxy_header(bytes(h + "rest"));
  ASSERT_EQ(p.status, ProxyParseStatus::Complete) << p.error;
  EXPECT_EQ(p.header.version, ProxyVersion::V1);
  EXPECT_EQ(p.header.length, h.size());
  EXPECT_EQ(p.header.source->to_string(), "192.0.2.7:40001");
  EXPECT_EQ(p.header.destination->to_string(), "198.51.100.1:3478");
}

TEST(ProxyProtocolTest, V1Tcp6AndUnknown) {
  auto p = parse_proxy_header(bytes(std::string("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n")));
  ASSERT_EQ(p.status, ProxyParseStatus::Complete) << p.error;
  EXPECT_EQ(p.header.source->to_string(), "[2001:db8::7]:65535");
  EXPECT_EQ(p.header.destination->port, 0);
  for (std::string u : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
    p = parse_proxy_header(bytes(u));
    ASSERT_EQ(p.status, ProxyParseStatus::Complete) << u;
    EXPECT_FALSE(p.header.source) << "UNKNOWN keeps the connection's own address";
    EXPECT_EQ(p.header.length, u.size());
  }
}

TEST(ProxyProtocolTest, V1SplitAtEveryByteNeedsMoreUntilTheEnd) {
  const std::string h = "PROXY TCP4 192.0.2.7 198.51.100.1 40001 3478\r\n";
  for (size_t n = 0; n < h.size(); ++n) {
    EXPECT_EQ(parse_proxy_header(bytes(h.substr(0, n))).status, ProxyParseStatus::NeedMore) << n;
  }
  EXPECT_EQ(parse_proxy_header(bytes(h)).status, ProxyParseStatus::Complete);
}

TEST(ProxyProtocolTest, V1Malformed) {
  for (std::string bad : {
           "PROXY TCP4 192.0.2.7 198.51.100.1 40001\r\n",         // a field short
           "PROXY TCP4 192.0.2.7 198.51.100.1 40001 3478 9\r\n",  // one too many
           "PROXY TCP4 192.0.2.7  198.51.100.1 40001 3478\r\n",   // two spaces
           "PROXY TCP4 2001:db8::7 198.51.100.1 40001 3478\r\n",  // family mismatch
           "PROXY TCP6 192.0.2.7 2001:db8::1 40001 3478\r\n",     //
           "PROXY TCP4 192.0.2.300 198.51.100.1 40001 3478\r\n",  // not an address
           "PROXY TCP4 192.0.2.7 198.51.100.1 65536 3478\r\n",    // port out of range
           "PROXY TCP4 192.0.2.7 198.51.100.1 040001 3478\r\n",   // leading zero
           "PROXY TCP4 192.0.2.7 198.51.100.1 -1 3478\r\n",       // sign
           "PROXY UDP4 192.0.2.7 198.51.100.1 40001 3478\r\n",    // not TCP
           "PROXY TCP4 192.0.2.7 198.51.100.1 40001 3478\n",      // LF only
       }) {
    auto p = parse_proxy_header(bytes(bad));
    EXPECT_EQ(p.status, ProxyParseStatus::Invalid) << bad;
    EXPECT_FALSE(p.error.empty());
  }
  // 107 bytes without CRLF: no valid v1 line is that long.
  EXPECT_EQ(parse_proxy_header(bytes("PROXY UNKNOWN " + std::string(100, 'x'))).status, ProxyParseStatus::Invalid);
}

TEST(ProxyProtocolTest, NoHeaderIsInvalidAtOnce) {
  // A STUN Binding request (first byte 0x00) and a TLS ClientHello (0x16) are not headers.
  EXPECT_EQ(parse_proxy_header(bytes(std::vector<uint8_t>{0x00, 0x01, 0x00, 0x00})).status, ProxyParseStatus::Invalid);
  EXPECT_EQ(parse_proxy_header(bytes(std::vector<uint8_t>{0x16, 0x03, 0x01})).status, ProxyParseStatus::Invalid);
  EXPECT_EQ(parse_proxy_header(bytes(std::string("PROXX"))).status, ProxyParseStatus::Invalid);
  EXPECT_EQ(parse_proxy_header(bytes(std::string("GET / HTTP/1.1\r\n"))).status, ProxyParseStatus::Invalid);
  EXPECT_EQ(parse_proxy_header({}).status, ProxyParseStatus::NeedMore);
}

TEST(ProxyProtocolTest, V2ProxyTcp4WithTlvs) {
  auto body = kV4Body;
  body.insert(body.end(), {0x04, 0x00, 0x03, 'a', 'b', 'c'});  // a NOOP TLV, ignored
  auto h = v2(0x21, 0x11, body);
  const size_t header_len = h.size();
  h.insert(h.end(), {0x16, 0x03, 0x01});  // the stream goes on (a ClientHello)
  auto p = parse_proxy_header(bytes(h));
  ASSERT_EQ(p.status, ProxyParseStatus::Complete) << p.error;
  EXPECT_EQ(p.header.version, ProxyVersion::V2);
  EXPECT_EQ(p.header.length, header_len);
  EXPECT_EQ(p.header.source->to_string(), "192.0.2.7:40001");
  EXPECT_EQ(p.header.destination->to_string(), "198.51.100.1:3478");
}

TEST(ProxyProtocolTest, V2ProxyTcp6) {
  std::vector<uint8_t> body(36, 0);
  body[0] = 0x20, body[1] = 0x01, body[2] = 0x0d, body[3] = 0xb8, body[15] = 7;      // 2001:db8::7
  body[16] = 0x20, body[17] = 0x01, body[18] = 0x0d, body[19] = 0xb8, body[31] = 1;  // 2001:db8::1
  body[32] = 0x9C, body[33] = 0x41, body[34] = 0x0D, body[35] = 0x96;
  auto p = parse_proxy_header(bytes(v2(0x21, 0x21, body)));
  ASSERT_EQ(p.status, ProxyParseStatus::Complete) << p.error;
  EXPECT_EQ(p.header.source->to_string(), "[2001:db8::7]:40001");
  EXPECT_EQ(p.header.destination->to_string(), "[2001:db8::1]:3478");
}

TEST(ProxyProtocolTest, V2LocalAndUnspecKeepTheConnectionsAddress) {
  for (auto h :
       {v2(0x20, 0x00, {}), v2(0x20, 0x11, kV4Body), v2(0x21, 0x00, {}), v2(0x21, 0x31, std::vector<uint8_t>(216))}) {
    auto p = parse_proxy_header(bytes(h));
    ASSERT_EQ(p.status, ProxyParseStatus::Complete) << p.error;
    EXPECT_FALSE(p.header.source);
    EXPECT_EQ(p.header.length, h.size());
  }
}

TEST(ProxyProtocolTest, V2SplitAtEveryByteNeedsMoreUntilTheEnd) {
  const auto h = v2(0x21, 0x11, kV4Body);
  for (size_t n = 0; n < h.size(); ++n) {
    EXPECT_EQ(parse_proxy_header(stun::Bytes(h.data(), n)).status, ProxyParseStatus::NeedMore) << n;
  }
}

TEST(ProxyProtocolTest, V2Malformed) {
  EXPECT_EQ(parse_proxy_header(bytes(v2(0x11, 0x11, kV4Body))).status, ProxyParseStatus::Invalid);  // version 1
  EXPECT_EQ(parse_proxy_header(bytes(v2(0x22, 0x11, kV4Body))).status, ProxyParseStatus::Invalid);  // command 2
  EXPECT_EQ(parse_proxy_header(bytes(v2(0x21, 0x41, kV4Body))).status, ProxyParseStatus::Invalid);  // family 4
  EXPECT_EQ(parse_proxy_header(bytes(v2(0x21, 0x13, kV4Body))).status, ProxyParseStatus::Invalid);  // protocol 3
  EXPECT_EQ(parse_proxy_header(bytes(v2(0x21, 0x11, std::vector<uint8_t>(11)))).status, ProxyParseStatus::Invalid);
  EXPECT_EQ(parse_proxy_header(bytes(v2(0x21, 0x21, std::vector<uint8_t>(35)))).status, ProxyParseStatus::Invalid);
  // A length beyond kProxyMaxLength is refused before waiting for it.
  auto huge = v2(0x21, 0x11, kV4Body);
  huge[14] = 0x10;
  EXPECT_EQ(parse_proxy_header(stun::Bytes(huge.data(), 16)).status, ProxyParseStatus::Invalid);
}

}  // namespace
}  // namespace ferry::server
