/* The maps the kernel fast path (channel_relay.bpf.c) shares with ferry (server/fastpath/).
 * Plain C with fixed-size fields, included by the BPF program and by C++: one layout for both.
 * Addresses and ports are in network byte order, as they sit in the packet; the channel number
 * is in host order. Padding is explicit and always zero, so a key compares bytewise. */
#ifndef FERRY_FASTPATH_CHANNEL_RELAY_MAPS_H
#define FERRY_FASTPATH_CHANNEL_RELAY_MAPS_H

#include <linux/types.h>

#define FERRY_FP_MAX_CHANNELS 65536                    /* entries of each direction's map */
#define FERRY_FP_MAX_SLOTS (2 * FERRY_FP_MAX_CHANNELS) /* one counter slot per entry */

/* A channel's client side: ChannelData `channel` between client_ip:client_port and ferry's listener
 * listen_ip:listen_port. The key of client-to-peer entries, where listen_ip 0 stands for a
 * wildcard listener (the program tries the exact address first), and where peer-to-client entries
 * send to (there listen_ip is always concrete). */
struct ferry_fp_client {
  __u32 client_ip;
  __u32 listen_ip;
  __u16 client_port;
  __u16 listen_port;
  __u16 channel;
  __u16 pad;
};

/* Client to peer: keyed by struct ferry_fp_client, the datagram leaves as a plain one from relay_ip:relay_port to
 * peer_ip:peer_port. */
struct ferry_fp_c2p_value {
  __u32 relay_ip;
  __u32 peer_ip;
  __u16 relay_port;
  __u16 peer_port;
  __u32 slot;    /* index into the per-CPU counters */
  __u32 ifindex; /* where the route to the peer leaves (ferry asks the kernel's routing table) */
  __u32 pad;
  __u64 deadline_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns); from then on packets go to user space */
};

/* Peer to client: a datagram from peer_ip:peer_port to relay_ip:relay_port... */
struct ferry_fp_p2c_key {
  __u32 peer_ip;
  __u32 relay_ip;
  __u16 peer_port;
  __u16 relay_port;
};

/* ...leaves as ChannelData to `to` (for a wildcard listener, from the route's preferred source). */
struct ferry_fp_p2c_value {
  struct ferry_fp_client to;
  __u32 slot;
  __u32 ifindex; /* where the route to the client leaves */
  __u64 deadline_ns;
};

/* Per-CPU, per slot: what the kernel relayed for one entry (payload bytes, as ferry counts). */
struct ferry_fp_counter {
  __u64 packets;
  __u64 bytes;
};

#endif
