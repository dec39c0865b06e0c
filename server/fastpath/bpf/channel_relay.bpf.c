// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/* ferry's kernel fast path: a TC ingress (cls_bpf, direct action) program that relays established
 * UDP ChannelData between clients and peers without waking ferry (RFC 8656 §12).
 *
 *   client -> server: IPv4/UDP to a listener whose payload is ChannelData of an installed channel
 *                     -> the 4-byte header stripped, sent from the relayed address to the peer
 *   peer -> relay:    IPv4/UDP from an installed channel's peer to its relayed address
 *                     -> a ChannelData header prepended, sent from the listener to the client
 *
 * ferry installs an entry only after a ChannelBind its peer policy allowed, removes it when the
 * channel, permission or allocation ends, and reads the counters back. Everything that does not
 * match exactly (STUN, unknown channels, fragments, IP options, IPv6, GSO and CHECKSUM_PARTIAL
 * packets, padding after the ChannelData, entries past their deadline, packets over the egress
 * MTU) goes up to user space unchanged: that is always correct, only slower.
 *
 * Routing: ferry looks the egress device up in the routing table when it installs an entry (a
 * bpf_fib_lookup here would need IP forwarding enabled on the ingress device, which a TURN server
 * has no business turning on); bpf_redirect_neigh does the next hop and neighbour resolution.
 *
 * Checksums: the IPv4 header's is recomputed; the UDP checksum is updated incrementally with
 * bpf_l4_csum_replace (addresses, ports and length in the pseudo-header and the header, the
 * ChannelData header's two words added or removed; 16-bit alignment of the payload is kept, so
 * the payload's sum does not change). A zero UDP checksum (none) stays zero. Not kept exact:
 * skb->csum of a CHECKSUM_COMPLETE packet (some NIC drivers): transmit ignores it, but a packet
 * redirected into a veth and checked by a local receiver would be re-verified in software (with a
 * "hw csum failure" warning). Untested: veths never produce CHECKSUM_COMPLETE. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "channel_relay_maps.h"

#define ETH_LEN 14
#define IP_LEN 20
#define UDP_LEN 8
#define CD_LEN 4
#define IP_DF 0x4000
#define UDP_CHECK_OFF (ETH_LEN + IP_LEN + 6)

/* The one field of the kernel's sk_buff a TC program cannot see in __sk_buff (CO-RE, through the
 * bpf_cast_to_kern_ctx kfunc, Linux >= 6.3). A CHECKSUM_PARTIAL packet (sent by a local process
 * through a veth or tun with TX checksum offload) has its UDP checksum finished later from
 * csum_start, which moving the headers by 4 bytes would leave pointing at the wrong place: such
 * packets go to user space. */
struct sk_buff___ferry {
  __u8 ip_summed : 2;
} __attribute__((preserve_access_index));
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
#define CHECKSUM_PARTIAL 3

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FERRY_FP_MAX_CHANNELS);
  __type(key, struct ferry_fp_client);
  __type(value, struct ferry_fp_c2p_value);
} ferry_c2p SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FERRY_FP_MAX_CHANNELS);
  __type(key, struct ferry_fp_p2c_key);
  __type(value, struct ferry_fp_p2c_value);
} ferry_p2c SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FERRY_FP_MAX_SLOTS);
  __type(key, __u32);
  __type(value, struct ferry_fp_counter);
} ferry_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 bytes) {
  struct ferry_fp_counter *c = bpf_map_lookup_elem(&ferry_counters, &slot);
  if (c) {
    c->packets += 1;
    c->bytes += bytes;
  }
}

static __always_inline __u16 ip_checksum(struct iphdr *ip) {
  __u32 sum = 0;
  __u16 *w = (__u16 *)ip;
#pragma unroll
  for (int i = 0; i < IP_LEN / 2; i++) sum += w[i];
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

/* Whether the packet, len_diff bytes longer or shorter, fits the MTU of the device it leaves by. */
static __always_inline int fits(struct __sk_buff *skb, __u32 ifindex, __s32 len_diff) {
  __u32 mtu_len = 0;
  return ifindex != 0 && bpf_check_mtu(skb, ifindex, &mtu_len, len_diff, 0) == BPF_MTU_CHK_RET_SUCCESS;
}

/* Rewrites the IPv4 header in place (it sits right after the Ethernet header). */
static __always_inline int write_ip(struct __sk_buff *skb, __u32 src, __u32 dst, __u16 tot_len) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + ETH_LEN;
  if ((void *)(ip + 1) > end) return -1;
  ip->saddr = src;
  ip->daddr = dst;
  ip->tot_len = bpf_htons(tot_len);
  ip->ttl = 64;  // a new datagram from the relay, as the user path's socket would send
  ip->check = 0;
  ip->check = ip_checksum(ip);
  return 0;
}

/* The UDP checksum changes of a new pseudo-header and header (non-zero sums only). */
static __always_inline void udp_csum_move(struct __sk_buff *skb, struct iphdr *ip, struct udphdr *udp, __u32 src,
                                          __u32 dst, __u16 sport, __u16 dport, __u16 new_len) {
  const __u64 f = BPF_F_MARK_MANGLED_0;
  __u32 old_src = ip->saddr, old_dst = ip->daddr;
  __u16 old_sport = udp->source, old_dport = udp->dest, old_len = udp->len;
  __u16 len = bpf_htons(new_len);
  bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_src, src, f | BPF_F_PSEUDO_HDR | 4);
  bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_dst, dst, f | BPF_F_PSEUDO_HDR | 4);
  bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_len, len, f | BPF_F_PSEUDO_HDR | 2);  // pseudo-header length
  bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_len, len, f | 2);                     // header length
  bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_sport, sport, f | 2);
  bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_dport, dport, f | 2);
}

static __always_inline int client_to_peer(struct __sk_buff *skb, struct iphdr *ip, struct udphdr *udp, __u16 channel,
                                          __u16 cd_len, __u16 cd_w0, __u16 cd_w1) {
  struct ferry_fp_client key = {
      .client_ip = ip->saddr,
      .listen_ip = ip->daddr,
      .client_port = udp->source,
      .listen_port = udp->dest,
      .channel = channel,
  };
  struct ferry_fp_c2p_value *v = bpf_map_lookup_elem(&ferry_c2p, &key);
  if (!v) {
    key.listen_ip = 0;  // a wildcard listener
    v = bpf_map_lookup_elem(&ferry_c2p, &key);
    if (!v) return TC_ACT_OK;
  }
  if (bpf_ktime_get_ns() >= v->deadline_ns) return TC_ACT_OK;  // ferry decides from here on
  const __u32 relay_ip = v->relay_ip, peer_ip = v->peer_ip, slot = v->slot, ifindex = v->ifindex;
  const __u16 relay_port = v->relay_port, peer_port = v->peer_port;
  const __u16 udp_len = UDP_LEN + cd_len, tot_len = IP_LEN + udp_len;
  if (!fits(skb, ifindex, -CD_LEN)) return TC_ACT_OK;

  /* Checksum first, while the UDP header is where the offsets say: new pseudo-header and ports,
   * and the ChannelData header's two words leave the sum. */
  if (udp->check != 0) {
    udp_csum_move(skb, ip, udp, relay_ip, peer_ip, relay_port, peer_port, udp_len);
    bpf_l4_csum_replace(skb, UDP_CHECK_OFF, cd_w0, 0, BPF_F_MARK_MANGLED_0 | 2);
    bpf_l4_csum_replace(skb, UDP_CHECK_OFF, cd_w1, 0, BPF_F_MARK_MANGLED_0 | 2);
  }
  __u16 check = 0;
  if (bpf_skb_load_bytes(skb, UDP_CHECK_OFF, &check, 2) < 0) return TC_ACT_SHOT;
  /* Drop the 4 bytes after the IP header, then write the UDP header over what is left of the old
   * one and the ChannelData header: [ip][udp][cd][payload] -> [ip][udp'][payload]. */
  if (bpf_skb_adjust_room(skb, -CD_LEN, BPF_ADJ_ROOM_NET, 0) < 0) return TC_ACT_SHOT;
  struct udphdr nu = {.source = relay_port, .dest = peer_port, .len = bpf_htons(udp_len), .check = check};
  if (bpf_skb_store_bytes(skb, ETH_LEN + IP_LEN, &nu, sizeof(nu), 0) < 0) return TC_ACT_SHOT;
  if (write_ip(skb, relay_ip, peer_ip, tot_len) < 0) return TC_ACT_SHOT;
  count(slot, cd_len);
  return bpf_redirect_neigh(ifindex, 0, 0, 0);
}

static __always_inline int peer_to_client(struct __sk_buff *skb, struct iphdr *ip, struct udphdr *udp, __u16 udp_len) {
  struct ferry_fp_p2c_key key = {
      .peer_ip = ip->saddr,
      .relay_ip = ip->daddr,
      .peer_port = udp->source,
      .relay_port = udp->dest,
  };
  struct ferry_fp_p2c_value *v = bpf_map_lookup_elem(&ferry_p2c, &key);
  if (!v) return TC_ACT_OK;
  if (bpf_ktime_get_ns() >= v->deadline_ns) return TC_ACT_OK;
  const __u32 client_ip = v->to.client_ip, src = v->to.listen_ip, slot = v->slot, ifindex = v->ifindex;
  const __u16 client_port = v->to.client_port, listen_port = v->to.listen_port, channel = v->to.channel;
  const __u16 data_len = udp_len - UDP_LEN;
  const __u16 new_udp_len = udp_len + CD_LEN, tot_len = IP_LEN + new_udp_len;
  if (!fits(skb, ifindex, CD_LEN)) return TC_ACT_OK;

  const __u16 cd_w0 = bpf_htons(channel), cd_w1 = bpf_htons(data_len);
  if (udp->check != 0) {
    udp_csum_move(skb, ip, udp, src, client_ip, listen_port, client_port, new_udp_len);
    bpf_l4_csum_replace(skb, UDP_CHECK_OFF, 0, cd_w0, BPF_F_MARK_MANGLED_0 | 2);
    bpf_l4_csum_replace(skb, UDP_CHECK_OFF, 0, cd_w1, BPF_F_MARK_MANGLED_0 | 2);
  }
  __u16 check = 0;
  if (bpf_skb_load_bytes(skb, UDP_CHECK_OFF, &check, 2) < 0) return TC_ACT_SHOT;
  /* Open 4 bytes after the IP header and write the UDP and ChannelData headers into the 12 bytes
   * before the payload: [ip][udp][payload] -> [ip][udp'][cd][payload]. */
  if (bpf_skb_adjust_room(skb, CD_LEN, BPF_ADJ_ROOM_NET, 0) < 0) return TC_ACT_SHOT;
  struct {
    struct udphdr udp;
    __u16 w0, w1;
  } hdr = {.udp = {.source = listen_port, .dest = client_port, .len = bpf_htons(new_udp_len), .check = check},
           .w0 = cd_w0,
           .w1 = cd_w1};
  if (bpf_skb_store_bytes(skb, ETH_LEN + IP_LEN, &hdr, sizeof(hdr), 0) < 0) return TC_ACT_SHOT;
  if (write_ip(skb, src, client_ip, tot_len) < 0) return TC_ACT_SHOT;
  count(slot, data_len);
  return bpf_redirect_neigh(ifindex, 0, 0, 0);
}

SEC("tc")
int ferry_channel_relay(struct __sk_buff *skb) {
  if (skb->protocol != bpf_htons(ETH_P_IP) || skb->gso_size != 0) return TC_ACT_OK;
  struct sk_buff___ferry *kskb = bpf_cast_to_kern_ctx(skb);
  if (BPF_CORE_READ_BITFIELD(kskb, ip_summed) == CHECKSUM_PARTIAL) return TC_ACT_OK;
  /* The Ethernet, IPv4 and UDP headers and a ChannelData header in the linear part (a peer's
   * datagram may be shorter than that). */
  __u32 head = ETH_LEN + IP_LEN + UDP_LEN + CD_LEN;
  if (skb->len < head) head = skb->len;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  if (data + head > end) {  // usually linear already: pulling costs a helper call per packet
    if (bpf_skb_pull_data(skb, head) < 0) return TC_ACT_OK;
    data = (void *)(long)skb->data;
    end = (void *)(long)skb->data_end;
  }
  struct ethhdr *eth = data;
  struct iphdr *ip = data + ETH_LEN;
  struct udphdr *udp = data + ETH_LEN + IP_LEN;
  if ((void *)(udp + 1) > end) return TC_ACT_OK;
  if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->version != 4 || ip->protocol != IPPROTO_UDP)
    return TC_ACT_OK;
  if (ip->frag_off & bpf_htons(0x3fff)) return TC_ACT_OK;  // a fragment (MF or an offset)
  const __u16 udp_len = bpf_ntohs(udp->len);
  if (udp_len < UDP_LEN || bpf_ntohs(ip->tot_len) != IP_LEN + udp_len || skb->len != ETH_LEN + IP_LEN + udp_len)
    return TC_ACT_OK;
  __u8 *cd = (__u8 *)(udp + 1);
  if ((void *)(cd + CD_LEN) <= end && udp_len >= UDP_LEN + CD_LEN && (cd[0] & 0xc0) == 0x40) {
    const __u16 channel = ((__u16)cd[0] << 8) | cd[1];
    const __u16 cd_len = ((__u16)cd[2] << 8) | cd[3];
    /* Over UDP ChannelData needs no padding (RFC 8656 §12.5): only an exact frame is taken. */
    if (cd_len == udp_len - UDP_LEN - CD_LEN) {
      __u16 w0, w1;
      __builtin_memcpy(&w0, cd, 2);
      __builtin_memcpy(&w1, cd + 2, 2);
      int rc = client_to_peer(skb, ip, udp, channel, cd_len, w0, w1);
      if (rc != TC_ACT_OK) return rc;  // relayed (or dropped after a failed rewrite)
      /* No channel: a peer's datagram may look like ChannelData too. Untouched so far; the
       * headers are found again for the verifier. */
      data = (void *)(long)skb->data;
      end = (void *)(long)skb->data_end;
      ip = data + ETH_LEN;
      udp = data + ETH_LEN + IP_LEN;
      if ((void *)(udp + 1) > end) return TC_ACT_OK;
    }
  }
  return peer_to_client(skb, ip, udp, udp_len);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
