// One UDP socket on a libuv loop: bound by hand (SO_REUSEPORT, DONT-FRAGMENT), read into a buffer
// the loop's owner lends it, written synchronously with uv_udp_try_send. Nothing is allocated per
// datagram in either direction.
//
// Reads are batched: with UV_UDP_RECVMMSG libuv fills up to 20 datagrams per recvmmsg call, one per
// 64 KiB chunk of the lent buffer, then hands them to the callback one after the other. A buffer
// of kBatchReceiveBytes gets the full batch; one of 64 KiB still works, a datagram per call.
#pragma once

#include <cstddef>
#include <cstdint>

#include <uv.h>

#include "server/net/send_batch.h"
#include "server/net/socket_fd.h"
#include "server/net/uv_handle.h"
#include "stun/bytes.h"
#include "stun/transport_address.h"

namespace ferry::server {

class UdpSocket;

// Where the received datagrams of a socket go. The datagram sits at
// area.storage[area.headroom, area.headroom + len); the bytes around it may be written.
class DatagramHandler {
 public:
  virtual ~DatagramHandler() = default;
  virtual void on_datagram(UdpSocket& socket, const stun::TransportAddress& from, uint8_t* storage, size_t len) = 0;
  // A receive error other than "nothing to read" (rare: counted, never fatal).
  virtual void on_receive_error(UdpSocket& /*socket*/, int /*uv_error*/) {}
};

// A receive buffer shared by every socket of one loop: libuv hands a batch's datagrams to the
// callback before reading the next batch, so one buffer per loop suffices. The socket reads into
// [headroom, size - tailroom), at least kReceiveChunk bytes, and leaves the margins for in-place
// framing. In a batch, datagram k sits at the start of chunk k; its headroom is the end of chunk
// k-1, whose datagram has been handled by then, and its tailroom is inside chunk k.
struct ReceiveArea {
  uint8_t* storage = nullptr;
  size_t size = 0;
  size_t headroom = 0;
  size_t tailroom = 0;
  // Relayed datagrams held back until the batch ends (send_relayed); flushed by whichever socket
  // finishes a batch, so every socket reading into `storage` must name the same one. Null: none.
  SendBatch* batch = nullptr;
};

class UdpSocket {
 public:
  static constexpr size_t kReceiveChunk = 64 * 1024;  // libuv's chunk per datagram (UV__UDP_DGRAM_MAXSIZE)
  static constexpr size_t kBatchReceiveBytes = 20 * kReceiveChunk;  // libuv's largest batch (UV__MMSG_MAXWIDTH)

  // A bound socket on `loop`, or nullptr with *error set to a libuv error code.
  static UdpSocket* open(uv_loop_t* loop, const stun::TransportAddress& local, const SocketOptions& options,
                         int* error);

  // Delivers datagrams to `handler`; `tag` is the owner's name for this socket (e.g. a RelayId).
  int start(const ReceiveArea& area, DatagramHandler& handler, uint32_t tag);
  // Sends now or not at all: a full socket buffer (EAGAIN/ENOBUFS) drops the datagram, as a
  // router would. Returns 0 or a libuv error code.
  int send(const stun::TransportAddress& to, stun::Bytes bytes);
  // A relayed datagram: joins the receive area's SendBatch when its bytes are in the receive buffer
  // (sent when the batch being handled ends), else sent now. A failure adds to `dropped`.
  void send_relayed(const stun::TransportAddress& to, stun::Bytes bytes, Counter& dropped);
  // Closes the socket; the object deletes itself once libuv is done with the handle.
  void close();

  // During DatagramHandler::on_datagram: the free part of the receive buffer after the datagram
  // (the rest of its 64 KiB chunk, short of the next datagram's headroom), which stays put until
  // the batch ends. Answers built there can wait in the SendBatch. Empty at other times.
  stun::MutableBytes scratch() const { return scratch_; }
  const stun::TransportAddress& local() const { return local_; }
  uint32_t tag() const { return tag_; }

 private:
  UdpSocket() = default;
  ~UdpSocket() = default;
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned flags);

  void end_of_batch() const {
    if (area_.batch != nullptr) area_.batch->flush();
  }

  UvHandle<uv_udp_t> handle_;  // empty once closing
  int fd_ = -1;
  stun::TransportAddress local_;
  ReceiveArea area_;
  DatagramHandler* handler_ = nullptr;
  uint32_t tag_ = 0;
  stun::MutableBytes scratch_;
};

}  // namespace ferry::server
