// The bounded queue between a worker loop and its usage writer (both on that loop). push() never
// blocks and holds at most `capacity` records: when full, the record is dropped and counted. A
// record whose allocation already has one waiting replaces it in place, since records carry
// totals: during a database outage a long-lived allocation costs one slot, not one per interval.
//
// The writer takes a batch from the front (take), sends it, and reports the outcome (done): on
// success the batch leaves the queue, on failure it stays in flight and the next take() returns
// it again unchanged. Records in flight are not replaced: a newer record for one of them waits
// behind it (the database keeps the newer of the two, see UsageWriter).
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "db/usage_record.h"

namespace ferry::db {

class UsageQueue {
 public:
  enum class Push { Queued, Replaced, Dropped };

  explicit UsageQueue(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  Push push(UsageRecord r);
  // The batch in flight, or, when none is, the first min(n, waiting) records, now in flight.
  // Valid until the next take() or done().
  std::span<const UsageRecord> take(size_t n);
  // The batch in flight reached the database (ok: it leaves) or did not (it stays, to be retried).
  void done(bool ok);

  size_t size() const { return waiting_.size() + batch_.size(); }
  size_t in_flight() const { return batch_.size(); }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size() == 0; }
  uint64_t dropped() const { return dropped_; }
  uint64_t replaced() const { return replaced_; }

 private:
  size_t capacity_;
  std::deque<UsageRecord> waiting_;
  std::vector<UsageRecord> batch_;                   // in flight, moved out of waiting_'s front
  uint64_t head_seq_ = 0;                            // sequence number of waiting_.front()
  std::unordered_map<std::string, uint64_t> index_;  // allocation id -> sequence number in waiting_
  uint64_t dropped_ = 0;
  uint64_t replaced_ = 0;
};

}  // namespace ferry::db
