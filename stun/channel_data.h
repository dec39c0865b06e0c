// ChannelData framing (RFC 8656 §12.4): 2-byte channel number, 2-byte length, data. Over UDP the
// padding is optional; over TCP/TLS each frame is padded to a multiple of 4 (§12.5).
#pragma once

#include <cstdint>
#include <optional>

#include "stun/bytes.h"
#include "stun/result.h"

namespace ferry::stun {

inline constexpr uint16_t kMinChannel = 0x4000;
inline constexpr uint16_t kMaxChannel = 0x4FFF;  // 0x5000-0x7FFF are reserved (RFC 8656 §12)
inline constexpr size_t kChannelDataHeaderSize = 4;

inline constexpr uint16_t kMaxChannelRfc5766 = 0x7FFF;  // the older range libwebrtc still uses

constexpr bool valid_channel_number(uint16_t c, uint16_t max_channel = kMaxChannel) {
  return c >= kMinChannel && c <= max_channel;
}

struct ChannelDataView {
  uint16_t channel = 0;
  Bytes data;
};

// Parses a ChannelData message at the start of `bytes`. The channel must be in 0x4000-0x4FFF and
// the data must fit; bytes beyond 4 + length (padding) are ignored.
Result<ChannelDataView> parse_channel_data(Bytes bytes, uint16_t max_channel = kMaxChannel);

// Writes the 4-byte header in front of data that already sits at out[4..4+length) (so a relayed
// payload is framed in place). Returns the frame size, padded to 4 when `pad` is set (streams).
size_t write_channel_data_header(uint8_t* out, uint16_t channel, uint16_t length, bool pad);

// Stream framing (RFC 8656 §12.5 / RFC 8489 §6.2.2): how many bytes the next STUN message or
// ChannelData frame at the front of a stream occupies, or nullopt when more bytes are needed.
// Error::NotStun when the first bits match neither (the connection should be closed).
Result<std::optional<size_t>> stream_frame_size(Bytes buffered, uint16_t max_channel = kMaxChannel);

}  // namespace ferry::stun
