#include "server/net/send_batch.h"

#include <cerrno>

namespace ferry::server {

void SendBatch::add(int fd, const stun::TransportAddress& to, stun::Bytes bytes, Counter& dropped) {
  if (count_ == kCapacity) flush();
  Entry& e = entries_[count_++];
  e.fd = fd;
  e.to_len = to.to_sockaddr(e.to);
  e.iov.iov_base = const_cast<uint8_t*>(bytes.data());
  e.iov.iov_len = bytes.size();
  e.dropped = &dropped;
}

void SendBatch::discard(int fd) {
  size_t kept = 0;
  for (size_t i = 0; i < count_; ++i)
    if (entries_[i].fd != fd) entries_[kept++] = entries_[i];
  count_ = kept;
}

void SendBatch::flush() {
  if (count_ == 0) return;
  sent_.fill(false);
  for (size_t i = 0; i < count_; ++i)
    if (!sent_[i]) send_group(entries_[i].fd, i);
  count_ = 0;
}

// Sends entries [first, count_) of socket `fd` with sendmmsg. What the kernel does not take (a full
// socket buffer) is dropped and counted, as a router would: the data path never waits.
void SendBatch::send_group(int fd, size_t first) {
  size_t n = 0;
  std::array<size_t, kCapacity> index;
  for (size_t i = first; i < count_; ++i) {
    if (sent_[i] || entries_[i].fd != fd) continue;
    sent_[i] = true;
    Entry& e = entries_[i];
    msgs_[n] = mmsghdr{};
    msgs_[n].msg_hdr.msg_name = &e.to;
    msgs_[n].msg_hdr.msg_namelen = e.to_len;
    msgs_[n].msg_hdr.msg_iov = &e.iov;
    msgs_[n].msg_hdr.msg_iovlen = 1;
    index[n++] = i;
  }
  size_t done = 0;
  while (done < n) {
    const int rc = ::sendmmsg(fd, msgs_.data() + done, static_cast<unsigned>(n - done), MSG_DONTWAIT);
    if (rc > 0) {
      done += static_cast<size_t>(rc);
      continue;
    }
    if (rc < 0 && errno == EINTR) continue;
    // EAGAIN/ENOBUFS, or an error of the datagram at `done` (unreachable, too big): drop that one
    // and go on with the rest.
    entries_[index[done]].dropped->add();
    ++done;
  }
}

}  // namespace ferry::server
