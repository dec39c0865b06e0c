// libFuzzer target: the TCP/TLS stream framer (RFC 8656 §12.5, RFC 8489 §6.2.2) and ChannelData.
//
// The input (after its first byte) is a byte stream carrying STUN messages and ChannelData frames.
// It is split into frames twice: once with the whole stream buffered, once fed in chunks whose sizes
// come from the first input byte (like TCP reads). Both must produce the same frames and stop at the
// same error; every complete frame is parsed as STUN or ChannelData.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "stun/channel_data.h"
#include "stun/constants.h"
#include "stun/message.h"

using namespace ferry::stun;

namespace {

struct Outcome {
  std::vector<size_t> frames;  // sizes
  bool error = false;          // framing error (the connection would be closed)
};

void consume(Bytes frame) {
  if ((frame[0] & 0xC0) == 0) {
    auto m = MessageView::parse(frame);
    if (m.ok()) {
      FUZZ_CHECK(m->size() == frame.size());
      m->for_each([](const RawAttribute&) { return true; });
    }
  } else {
    auto c = parse_channel_data(frame);
    FUZZ_CHECK(c.ok());  // the framer already checked the number and the length fits the frame
    FUZZ_CHECK(4 + c->data.size() <= frame.size() && frame.size() - (4 + c->data.size()) < 4);
  }
}

// Frames everything in `buffered`; returns the number of bytes consumed.
size_t drain(Bytes buffered, Outcome& out) {
  size_t pos = 0;
  while (pos < buffered.size()) {
    auto fs = stream_frame_size(buffered.subspan(pos));
    if (!fs.ok()) {
      out.error = true;
      return pos;
    }
    if (!fs->has_value() || **fs > buffered.size() - pos) return pos;
    FUZZ_CHECK(**fs >= 4);
    consume(buffered.subspan(pos, **fs));
    out.frames.push_back(**fs);
    pos += **fs;
  }
  return pos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned chunk_seed = data[0];
  const Bytes stream(data + 1, size - 1);

  (void)parse_channel_data(stream);
  (void)looks_like_channel_data(stream);

  Outcome whole;
  const size_t whole_used = drain(stream, whole);

  Outcome chunked;
  std::vector<uint8_t> buffer;
  size_t fed = 0;
  unsigned step = 0;
  while (fed < stream.size() && !chunked.error) {
    const size_t n = std::min<size_t>(stream.size() - fed, 1 + ((chunk_seed * 7 + step++ * 13) % 61));
    buffer.insert(buffer.end(), stream.begin() + static_cast<long>(fed), stream.begin() + static_cast<long>(fed + n));
    fed += n;
    const size_t used = drain(Bytes(buffer.data(), buffer.size()), chunked);
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<long>(used));
  }
  FUZZ_CHECK(chunked.frames == whole.frames);
  FUZZ_CHECK(chunked.error == whole.error);
  if (!whole.error) FUZZ_CHECK(buffer.size() == stream.size() - whole_used);
  return 0;
}
