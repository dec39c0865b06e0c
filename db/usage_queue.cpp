#include "db/usage_queue.h"

#include <utility>

namespace ferry::db {

UsageQueue::Push UsageQueue::push(UsageRecord r) {
  if (auto it = index_.find(r.allocation_id); it != index_.end()) {
    UsageRecord& old = waiting_[it->second - head_seq_];
    const bool was_final = old.final;
    old = std::move(r);
    old.final = old.final || was_final;
    ++replaced_;
    return Push::Replaced;
  }
  if (size() >= capacity_) {
    ++dropped_;
    return Push::Dropped;
  }
  index_.emplace(r.allocation_id, head_seq_ + waiting_.size());
  waiting_.push_back(std::move(r));
  return Push::Queued;
}

std::span<const UsageRecord> UsageQueue::take(size_t n) {
  if (!batch_.empty()) return batch_;
  const size_t k = n < waiting_.size() ? n : waiting_.size();
  batch_.reserve(k);
  for (size_t i = 0; i < k; ++i) {
    index_.erase(waiting_.front().allocation_id);
    batch_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    ++head_seq_;
  }
  return batch_;
}

void UsageQueue::done(bool ok) {
  if (ok) batch_.clear();
}

}  // namespace ferry::db
