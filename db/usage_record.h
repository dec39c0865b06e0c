// One usage record (table usage_records, db/migrations/0004_usage.sql): what one allocation used
// so far. Totals, not deltas: a later record of the same allocation supersedes an earlier one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::db {

struct UsageRecord {
  std::string allocation_id;  // "<node>/<boot>/<worker>/<serial>"
  std::string username;
  std::string realm;
  std::string node;
  std::string transport;  // the client's: udp, tcp, tls, dtls
  std::string client;     // the client's address
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;  // the end, or when this interim record was made
  bool final = false;         // the allocation has ended
  uint64_t bytes_in = 0;      // from the client, relayed to peers
  uint64_t bytes_out = 0;     // from peers, relayed to the client
  uint64_t packets_in = 0;
  uint64_t packets_out = 0;
  uint32_t peers = 0;                  // distinct peer IPs
  std::vector<std::string> peer_list;  // the first of them, bounded by the core
};

}  // namespace ferry::db
