#include "turn/peer_policy.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <tuple>
#include <vector>
#include "tests/unit/fixtures/addresses.h"

namespace ferry::turn {
namespace {

// A bare IP is a peer on port 3478.
TransportAddress peer(std::string_view text) { return test::addr(text, 3478); }

Cidr cidr(const std::string& text) {
  auto c = Cidr::parse(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(Cidr{});
}

// ---- Cidr ----

TEST(CidrTest, ParsesPrefixesAndBareAddresses) {
  auto c = cidr("10.0.0.0/8");
  EXPECT_EQ(c.family, Family::V4);
  EXPECT_EQ(c.prefix_len, 8);
  EXPECT_EQ(c.to_string(), "10.0.0.0/8");

  EXPECT_EQ(cidr("192.0.2.7").prefix_len, 32);
  EXPECT_EQ(cidr("2001:db8::1").prefix_len, 128);
  EXPECT_EQ(cidr("fd00::/8").family, Family::V6);
  EXPECT_EQ(cidr("fd00::/8").to_string(), "fd00::/8");
  EXPECT_EQ(cidr("0.0.0.0/0").prefix_len, 0);
  EXPECT_EQ(cidr("::/0").prefix_len, 0);
}

TEST(CidrTest, ClearsHostBits) {
  EXPECT_EQ(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
  EXPECT_EQ(cidr("172.31.255.255/12").to_string(), "172.16.0.0/12");
  EXPECT_EQ(cidr("fe80::1234/10").to_string(), "fe80::/10");
  EXPECT_EQ(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
}

TEST(CidrTest, RejectsGarbage) {
  for (const char* bad : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0/8",
                          "hello", "10.0.0.0/8/8", "[::1]/128", "10.0.0.0:80", "10.0.0.0/ 8"}) {
    EXPECT_FALSE(Cidr::parse(bad).has_value()) << bad;
  }
}

TEST(CidrTest, ContainsRespectsPrefixBoundaries) {
  auto c = cidr("172.16.0.0/12");
  EXPECT_FALSE(c.contains(peer("172.15.255.255")));
  EXPECT_TRUE(c.contains(peer("172.16.0.0")));
  EXPECT_TRUE(c.contains(peer("172.31.255.255")));
  EXPECT_FALSE(c.contains(peer("172.32.0.0")));

  auto v6 = cidr("fe80::/10");
  EXPECT_TRUE(v6.contains(peer("[febf:ffff::1]:1")));
  EXPECT_FALSE(v6.contains(peer("[fec0::1]:1")));
  EXPECT_FALSE(v6.contains(peer("[fe7f::1]:1")));
}

TEST(CidrTest, ZeroPrefixMatchesWholeFamilyOnly) {
  EXPECT_TRUE(cidr("0.0.0.0/0").contains(peer("8.8.8.8")));
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(peer("[2001:db8::1]:1")));
  EXPECT_TRUE(cidr("::/0").contains(peer("[2001:db8::1]:1")));
  EXPECT_FALSE(cidr("::/0").contains(peer("8.8.8.8")));
}

TEST(CidrTest, IgnoresPort) {
  EXPECT_TRUE(cidr("192.0.2.1").contains(peer("192.0.2.1:9")));
  EXPECT_TRUE(cidr("192.0.2.1").contains(peer("192.0.2.1:65535")));
}

TEST(CidrTest, OfClampsPrefix) {
  auto c = Cidr::of(peer("192.0.2.9"), 200);
  EXPECT_EQ(c.prefix_len, 32);
  EXPECT_EQ(Cidr::of(peer("192.0.2.9"), 24).to_string(), "192.0.2.0/24");
}

// ---- Default classes ----

struct ClassCase {
  const char* peer;
  PeerVerdict verdict;
};

class PeerPolicyClassTest : public ::testing::TestWithParam<ClassCase> {};

TEST_P(PeerPolicyClassTest, DefaultPolicy) {
  PeerPolicy policy;
  const auto& c = GetParam();
  EXPECT_EQ(policy.check(peer(c.peer)), c.verdict)
      << c.peer << " gave " << to_string(policy.check(peer(c.peer))) << ", want " << to_string(c.verdict);
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, PeerPolicyClassTest,
    ::testing::Values(
        // IPv4 public and documentation ranges are reachable.
        ClassCase{"8.8.8.8", PeerVerdict::Allowed}, ClassCase{"1.1.1.1", PeerVerdict::Allowed},
        ClassCase{"192.0.2.1", PeerVerdict::Allowed},     // TEST-NET-1
        ClassCase{"198.51.100.1", PeerVerdict::Allowed},  // TEST-NET-2
        ClassCase{"203.0.113.1", PeerVerdict::Allowed},   // TEST-NET-3
        // 0.0.0.0/8
        ClassCase{"0.0.0.0", PeerVerdict::Unspecified}, ClassCase{"0.255.255.255", PeerVerdict::Unspecified},
        ClassCase{"1.0.0.0", PeerVerdict::Allowed},
        // 127/8
        ClassCase{"126.255.255.255", PeerVerdict::Allowed}, ClassCase{"127.0.0.1", PeerVerdict::Loopback},
        ClassCase{"127.255.255.254", PeerVerdict::Loopback}, ClassCase{"128.0.0.0", PeerVerdict::Allowed},
        // RFC 1918
        ClassCase{"9.255.255.255", PeerVerdict::Allowed}, ClassCase{"10.0.0.0", PeerVerdict::Private},
        ClassCase{"10.255.255.255", PeerVerdict::Private}, ClassCase{"11.0.0.0", PeerVerdict::Allowed},
        ClassCase{"172.15.255.255", PeerVerdict::Allowed}, ClassCase{"172.16.0.0", PeerVerdict::Private},
        ClassCase{"172.31.255.255", PeerVerdict::Private}, ClassCase{"172.32.0.0", PeerVerdict::Allowed},
        ClassCase{"192.167.255.255", PeerVerdict::Allowed}, ClassCase{"192.168.0.1", PeerVerdict::Private},
        ClassCase{"192.168.255.255", PeerVerdict::Private}, ClassCase{"192.169.0.0", PeerVerdict::Allowed},
        // RFC 6598
        ClassCase{"100.63.255.255", PeerVerdict::Allowed}, ClassCase{"100.64.0.0", PeerVerdict::SharedAddress},
        ClassCase{"100.127.255.255", PeerVerdict::SharedAddress}, ClassCase{"100.128.0.0", PeerVerdict::Allowed},
        // link-local (cloud metadata)
        ClassCase{"169.254.169.254", PeerVerdict::LinkLocal}, ClassCase{"169.253.255.255", PeerVerdict::Allowed},
        ClassCase{"169.255.0.0", PeerVerdict::Allowed},
        // multicast, reserved, broadcast
        ClassCase{"223.255.255.255", PeerVerdict::Allowed}, ClassCase{"224.0.0.1", PeerVerdict::Multicast},
        ClassCase{"239.255.255.255", PeerVerdict::Multicast}, ClassCase{"240.0.0.0", PeerVerdict::Reserved},
        ClassCase{"255.255.255.254", PeerVerdict::Reserved}, ClassCase{"255.255.255.255", PeerVerdict::Broadcast},
        // IPv6
        ClassCase{"[2001:db8::1]:1", PeerVerdict::Allowed},  // documentation
        ClassCase{"[2606:4700::1111]:1", PeerVerdict::Allowed}, ClassCase{"[::]:1", PeerVerdict::Unspecified},
        ClassCase{"[::1]:1", PeerVerdict::Loopback}, ClassCase{"[fc00::1]:1", PeerVerdict::UniqueLocal},
        ClassCase{"[fdff:ffff::1]:1", PeerVerdict::UniqueLocal}, ClassCase{"[fbff::1]:1", PeerVerdict::Allowed},
        ClassCase{"[fe80::1]:1", PeerVerdict::LinkLocal}, ClassCase{"[febf::1]:1", PeerVerdict::LinkLocal},
        ClassCase{"[ff02::1]:1", PeerVerdict::Multicast}, ClassCase{"[ff0e::1]:1", PeerVerdict::Multicast},
        ClassCase{"[100::1]:1", PeerVerdict::DiscardOnly},
        ClassCase{"[100::ffff:ffff:ffff:ffff]:1", PeerVerdict::DiscardOnly},
        ClassCase{"[100:0:0:1::1]:1", PeerVerdict::Allowed}, ClassCase{"[64:ff9b:1::1]:1", PeerVerdict::Nat64LocalUse},
        ClassCase{"[64:ff9b:1:ffff::1]:1", PeerVerdict::Nat64LocalUse},
        // IPv4-mapped: the embedded IPv4 address decides, with its reason.
        ClassCase{"[::ffff:127.0.0.1]:1", PeerVerdict::Loopback},
        ClassCase{"[::ffff:0.0.0.0]:1", PeerVerdict::Unspecified},
        ClassCase{"[::ffff:10.1.2.3]:1", PeerVerdict::Private},
        ClassCase{"[::ffff:172.16.0.1]:1", PeerVerdict::Private},
        ClassCase{"[::ffff:192.168.1.1]:1", PeerVerdict::Private},
        ClassCase{"[::ffff:100.64.0.1]:1", PeerVerdict::SharedAddress},
        ClassCase{"[::ffff:169.254.169.254]:1", PeerVerdict::LinkLocal},
        ClassCase{"[::ffff:224.0.0.1]:1", PeerVerdict::Multicast},
        ClassCase{"[::ffff:240.0.0.1]:1", PeerVerdict::Reserved},
        ClassCase{"[::ffff:255.255.255.255]:1", PeerVerdict::Broadcast},
        ClassCase{"[::ffff:8.8.8.8]:1", PeerVerdict::Allowed},
        // IPv4-compatible (deprecated, still routed by some stacks)
        ClassCase{"[::127.0.0.1]:1", PeerVerdict::Loopback}, ClassCase{"[::10.0.0.1]:1", PeerVerdict::Private},
        ClassCase{"[::0.0.0.2]:1", PeerVerdict::Unspecified}, ClassCase{"[::8.8.8.8]:1", PeerVerdict::Allowed},
        // RFC 6052 well-known NAT64 prefix
        ClassCase{"[64:ff9b::127.0.0.1]:1", PeerVerdict::Loopback},
        ClassCase{"[64:ff9b::10.0.0.1]:1", PeerVerdict::Private},
        ClassCase{"[64:ff9b::169.254.169.254]:1", PeerVerdict::LinkLocal},
        ClassCase{"[64:ff9b::8.8.8.8]:1", PeerVerdict::Allowed},
        // 6to4: 2002:AABB:CCDD:: embeds AA.BB.CC.DD
        ClassCase{"[2002:7f00:1::1]:1", PeerVerdict::Loopback}, ClassCase{"[2002:c0a8:101::1]:1", PeerVerdict::Private},
        ClassCase{"[2002:808:808::1]:1", PeerVerdict::Allowed}),
    // Stable, readable test names (the default prints the struct's bytes, pointers included).
    [](const ::testing::TestParamInfo<ClassCase>& info) {
  std::string name = std::to_string(info.index) + "_";
  for (const char* c = info.param.peer; *c != 0; ++c) name += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
  return name;
    });

TEST(PeerPolicyTest, PortZeroIsInvalidEvenWhenAllowed) {
  PeerPolicy policy;
  policy.allow(cidr("0.0.0.0/0"));
  EXPECT_EQ(policy.check(peer("8.8.8.8:0")), PeerVerdict::InvalidPort);
  EXPECT_EQ(policy.check(peer("[2001:db8::1]:0")), PeerVerdict::InvalidPort);
  EXPECT_EQ(policy.check(peer("8.8.8.8:1")), PeerVerdict::Allowed);
  EXPECT_EQ(policy.check(peer("8.8.8.8:65535")), PeerVerdict::Allowed);
}

TEST(PeerPolicyTest, EmbeddedV4) {
  EXPECT_EQ(PeerPolicy::embedded_v4(peer("[::ffff:1.2.3.4]:7")), peer("1.2.3.4:7"));
  EXPECT_EQ(PeerPolicy::embedded_v4(peer("[::1.2.3.4]:7")), peer("1.2.3.4:7"));
  EXPECT_EQ(PeerPolicy::embedded_v4(peer("[64:ff9b::1.2.3.4]:7")), peer("1.2.3.4:7"));
  EXPECT_EQ(PeerPolicy::embedded_v4(peer("[2002:102:304::5]:7")), peer("1.2.3.4:7"));
  EXPECT_FALSE(PeerPolicy::embedded_v4(peer("1.2.3.4:7")));
  EXPECT_FALSE(PeerPolicy::embedded_v4(peer("[::]:7")));
  EXPECT_FALSE(PeerPolicy::embedded_v4(peer("[::1]:7")));
  EXPECT_FALSE(PeerPolicy::embedded_v4(peer("[2001:db8::1.2.3.4]:7")));
  EXPECT_FALSE(PeerPolicy::embedded_v4(peer("[::fffe:1.2.3.4]:7")));
  EXPECT_FALSE(PeerPolicy::embedded_v4(peer("[64:ff9b:0:0:0:1:102:304]:7")));  // not the /96
}

// ---- Own addresses ----

TEST(PeerPolicyTest, OwnAddressDeniedOnAnyPort) {
  PeerPolicy policy;
  policy.add_own_address(peer("203.0.113.10:3478"));   // listener
  policy.add_own_address(peer("203.0.113.20:49152"));  // relay
  policy.add_own_address(peer("[2001:db8::20]:0"));
  EXPECT_EQ(policy.check(peer("203.0.113.10:3478")), PeerVerdict::OwnAddress);
  EXPECT_EQ(policy.check(peer("203.0.113.10:5000")), PeerVerdict::OwnAddress);
  EXPECT_EQ(policy.check(peer("203.0.113.20:60000")), PeerVerdict::OwnAddress);
  EXPECT_EQ(policy.check(peer("[2001:db8::20]:9")), PeerVerdict::OwnAddress);
  EXPECT_EQ(policy.check(peer("203.0.113.11:3478")), PeerVerdict::Allowed);
  // The same IP spelled as IPv4-mapped or NAT64 is still us.
  EXPECT_EQ(policy.check(peer("[::ffff:203.0.113.20]:1")), PeerVerdict::OwnAddress);
  EXPECT_EQ(policy.check(peer("[64:ff9b::203.0.113.20]:1")), PeerVerdict::OwnAddress);
}

TEST(PeerPolicyTest, OwnAddressesAreStoredOncePortless) {
  PeerPolicy policy;
  policy.add_own_address(peer("203.0.113.10:3478"));
  policy.add_own_address(peer("203.0.113.10:5349"));
  ASSERT_EQ(policy.own_addresses().size(), 1u);
  EXPECT_EQ(policy.own_addresses()[0].port, 0);
}

// ---- Configuration order ----

TEST(PeerPolicyTest, AllowOverridesDefaultClassForLoopbackTests) {
  PeerPolicy policy;
  policy.allow(cidr("127.0.0.0/8"));
  EXPECT_EQ(policy.check(peer("127.0.0.1:40000")), PeerVerdict::Allowed);
  EXPECT_EQ(policy.check(peer("[::ffff:127.0.0.1]:40000")), PeerVerdict::Allowed);
  EXPECT_EQ(policy.check(peer("[::1]:40000")), PeerVerdict::Loopback);  // v6 loopback not named
  EXPECT_EQ(policy.check(peer("10.0.0.1:40000")), PeerVerdict::Private);
}

TEST(PeerPolicyTest, AllowOverridesOwnAddress) {
  PeerPolicy policy;
  policy.add_own_address(peer("127.0.0.1:3478"));
  EXPECT_EQ(policy.check(peer("127.0.0.1:50000")), PeerVerdict::OwnAddress);
  policy.allow(cidr("127.0.0.0/8"));
  EXPECT_EQ(policy.check(peer("127.0.0.1:50000")), PeerVerdict::Allowed);
}

TEST(PeerPolicyTest, DenyBeatsAllow) {
  PeerPolicy policy;
  policy.allow(cidr("10.0.0.0/8"));
  policy.deny(cidr("10.1.0.0/16"));
  EXPECT_EQ(policy.check(peer("10.2.3.4:1")), PeerVerdict::Allowed);
  EXPECT_EQ(policy.check(peer("10.1.3.4:1")), PeerVerdict::DeniedByConfig);
  // Order of configuration does not matter.
  PeerPolicy reversed;
  reversed.deny(cidr("10.1.0.0/16"));
  reversed.allow(cidr("10.0.0.0/8"));
  EXPECT_EQ(reversed.check(peer("10.1.3.4:1")), PeerVerdict::DeniedByConfig);
}

TEST(PeerPolicyTest, DenyBeatsEverythingIncludingPublic) {
  PeerPolicy policy;
  policy.deny(cidr("8.8.8.0/24"));
  policy.deny(cidr("2001:db8::/32"));
  EXPECT_EQ(policy.check(peer("8.8.8.8:53")), PeerVerdict::DeniedByConfig);
  EXPECT_EQ(policy.check(peer("8.8.4.4:53")), PeerVerdict::Allowed);
  EXPECT_EQ(policy.check(peer("[2001:db8::1]:53")), PeerVerdict::DeniedByConfig);
  // A denied IPv4 prefix cannot be reached through an IPv6 spelling either.
  EXPECT_EQ(policy.check(peer("[::ffff:8.8.8.8]:53")), PeerVerdict::DeniedByConfig);
  EXPECT_EQ(policy.check(peer("[64:ff9b::8.8.8.8]:53")), PeerVerdict::DeniedByConfig);
  EXPECT_EQ(policy.check(peer("[2002:808:808::1]:53")), PeerVerdict::DeniedByConfig);
}

TEST(PeerPolicyTest, DenyOnV6SpellingAppliesToThatSpelling) {
  PeerPolicy policy;
  policy.deny(cidr("::ffff:0:0/96"));  // operator bans every mapped address outright
  EXPECT_EQ(policy.check(peer("[::ffff:8.8.8.8]:1")), PeerVerdict::DeniedByConfig);
  EXPECT_EQ(policy.check(peer("8.8.8.8:1")), PeerVerdict::Allowed);
}

TEST(PeerPolicyTest, AllowBeatsOwnAddressAndDenyStillBeatsAllow) {
  PeerPolicy policy;
  policy.add_own_address(peer("192.0.2.1:3478"));
  policy.allow(cidr("192.0.2.0/24"));
  policy.deny(cidr("192.0.2.1"));
  EXPECT_EQ(policy.check(peer("192.0.2.1:1")), PeerVerdict::DeniedByConfig);
  EXPECT_EQ(policy.check(peer("192.0.2.2:1")), PeerVerdict::Allowed);
}

TEST(PeerPolicyTest, AllowEverythingOpensEveryClass) {
  PeerPolicy policy;
  policy.allow(cidr("0.0.0.0/0"));
  policy.allow(cidr("::/0"));
  for (const char* p : {"127.0.0.1", "10.0.0.1", "169.254.169.254", "224.0.0.1", "[::1]:1", "[fe80::1]:1"}) {
    EXPECT_EQ(policy.check(peer(p)), PeerVerdict::Allowed) << p;
  }
}

TEST(PeerPolicyTest, AllowsHelperAgreesWithCheck) {
  PeerPolicy policy;
  EXPECT_TRUE(policy.allows(peer("8.8.8.8:1")));
  EXPECT_FALSE(policy.allows(peer("127.0.0.1:1")));
}

TEST(PeerPolicyTest, VerdictLabelsAreDistinct) {
  std::vector<std::string_view> seen;
  for (int i = 0; i <= static_cast<int>(PeerVerdict::Nat64LocalUse); ++i) {
    auto label = to_string(static_cast<PeerVerdict>(i));
    EXPECT_NE(label, "unknown");
    for (auto s : seen) EXPECT_NE(s, label);
    seen.push_back(label);
  }
}

}  // namespace
}  // namespace ferry::turn
