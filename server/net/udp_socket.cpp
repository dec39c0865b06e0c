#include "server/net/udp_socket.h"

#include <sys/socket.h>
#include <unistd.h>

namespace ferry::server {

UdpSocket* UdpSocket::open(uv_loop_t* loop, const stun::TransportAddress& local, const SocketOptions& options,
                           int* error) {
  const int fd = open_bound_socket(SOCK_DGRAM, local, options);
  if (fd < 0) {
    *error = fd;
    return nullptr;
  }
  auto* s = new UdpSocket();
  // AF_UNSPEC: no socket of libuv's own, the one above is adopted by uv_udp_open.
  int rc = s->handle_.init(loop, s, uv_udp_init_ex, static_cast<unsigned>(AF_UNSPEC | UV_UDP_RECVMMSG));
  if (rc != 0) {
    ::close(fd);
    delete s;
    *error = rc;
    return nullptr;
  }
  rc = uv_udp_open(s->handle_.get(), fd);
  if (rc != 0) {
    ::close(fd);  // not adopted by the handle
    s->close();   // an initialised handle must still go through uv_close
    *error = rc;
    return nullptr;
  }
  s->fd_ = fd;
  s->local_ = bound_address(fd, local);
  return s;
}

int UdpSocket::start(const ReceiveArea& area, DatagramHandler& handler, uint32_t tag) {
  // libuv 1.44 in recvmmsg mode cuts the buffer into 64 KiB chunks; with none it would spin.
  if (area.size < area.headroom + area.tailroom + kReceiveChunk) return UV_EINVAL;
  area_ = area;
  handler_ = &handler;
  tag_ = tag;
  return uv_udp_recv_start(handle_.get(), &UdpSocket::on_alloc, &UdpSocket::on_recv);
}

void UdpSocket::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  const auto* s = UvHandle<uv_udp_t>::owner_of<UdpSocket>(handle);
  if (s == nullptr) {  // closed: nothing more is read
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  const ReceiveArea& a = s->area_;
  buf->base = reinterpret_cast<char*>(a.storage + a.headroom);
  buf->len = a.size - a.headroom - a.tailroom;
}

void UdpSocket::on_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned flags) {
  auto* s = UvHandle<uv_udp_t>::owner_of<UdpSocket>(handle);
  if (s == nullptr) return;  // closed: libuv still hands over the rest of a batch read
  if (nread < 0) {
    s->end_of_batch();
    s->handler_->on_receive_error(*s, static_cast<int>(nread));
    return;
  }
  // nread == 0 with no address: the socket ran dry, or the end of a batch (UV_UDP_MMSG_FREE):
  // what the batch relayed goes out now, before the next read reuses the buffer.
  if (addr == nullptr) {
    s->end_of_batch();
    return;
  }
  if (flags & UV_UDP_PARTIAL) return;  // a truncated datagram is useless to relay
  const ReceiveArea& a = s->area_;
  // The datagram is at buf->base: the area's start, or the start of chunk k of a batch.
  uint8_t* storage = reinterpret_cast<uint8_t*>(buf->base) - a.headroom;
  const auto len = static_cast<size_t>(nread);
  // Its tailroom must not reach into the next chunk, whose datagram is not handled yet. Only a
  // datagram within a few bytes of 64 KiB could; none of those is a TURN message.
  if ((flags & UV_UDP_MMSG_CHUNK) && len + a.tailroom > kReceiveChunk) return;
  auto from = stun::TransportAddress::from_sockaddr(addr);
  if (!from) return;
  uint8_t* free_begin = storage + a.headroom + len + a.tailroom;
  uint8_t* free_end = (flags & UV_UDP_MMSG_CHUNK) ? reinterpret_cast<uint8_t*>(buf->base) + kReceiveChunk - a.headroom
                                                  : a.storage + a.size - a.tailroom;
  s->scratch_ = free_end > free_begin ? stun::MutableBytes(free_begin, free_end) : stun::MutableBytes{};
  s->handler_->on_datagram(*s, *from, storage, len);
  s->scratch_ = {};  // s lives on until the close callback even when the handler closed it
  if (!(flags & UV_UDP_MMSG_CHUNK)) s->end_of_batch();  // a single read: it was its own batch
}

int UdpSocket::send(const stun::TransportAddress& to, stun::Bytes bytes) {
  sockaddr_storage ss;
  to.to_sockaddr(ss);
  uv_buf_t buf =
      uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(bytes.data())), static_cast<unsigned>(bytes.size()));
  if (!handle_) return UV_EBADF;
  const int rc = uv_udp_try_send(handle_.get(), &buf, 1, reinterpret_cast<const sockaddr*>(&ss));
  return rc < 0 ? rc : 0;
}

void UdpSocket::send_relayed(const stun::TransportAddress& to, stun::Bytes bytes, Counter& dropped) {
  if (area_.batch != nullptr && area_.batch->holds(bytes)) {
    area_.batch->add(fd_, to, bytes, dropped);
  } else if (send(to, bytes) != 0) {
    dropped.add();
  }
}

void UdpSocket::close() {
  if (!handle_) return;
  if (area_.batch != nullptr) {
    // Closed mid-batch (its allocation ended): libuv makes no end-of-batch call for a closed
    // handle, so send what others queued now, while their bytes are still in place, and not what
    // was queued for this descriptor, whose number the kernel may hand out again.
    area_.batch->discard(fd_);
    area_.batch->flush();
  }
  // Freed with its handle: a handler that closed the socket may still be inside on_recv.
  handle_.close([](void* self) { delete static_cast<UdpSocket*>(self); }, this);
}

}  // namespace ferry::server
