#include "stun/channel_data.h"

#include <cstring>

#include "stun/constants.h"

namespace ferry::stun {

Result<ChannelDataView> parse_channel_data(Bytes bytes, uint16_t max_channel) {
  if (bytes.size() < kChannelDataHeaderSize) return Error::Truncated;
  const uint16_t channel = load_u16(bytes.data());
  if (!valid_channel_number(channel, max_channel)) return Error::BadChannelNumber;
  const size_t length = load_u16(bytes.data() + 2);
  if (length > bytes.size() - kChannelDataHeaderSize) return Error::Truncated;
  return ChannelDataView{channel, bytes.subspan(kChannelDataHeaderSize, length)};
}

size_t write_channel_data_header(uint8_t* out, uint16_t channel, uint16_t length, bool pad) {
  store_u16(out, channel);
  store_u16(out + 2, length);
  size_t size = kChannelDataHeaderSize + length;
  if (pad) {
    const size_t padded = padded4(size);
    std::memset(out + size, 0, padded - size);
    size = padded;
  }
  return size;
}

Result<std::optional<size_t>> stream_frame_size(Bytes buffered, uint16_t max_channel) {
  if (buffered.empty()) return std::optional<size_t>{};
  const uint8_t top = buffered[0] & 0xC0;
  if (top == 0x00) {
    if (buffered.size() < 4) return std::optional<size_t>{};
    const size_t length = load_u16(buffered.data() + 2);
    if (length % 4 != 0) return Error::BadLength;
    return std::optional<size_t>{kHeaderSize + length};
  }
  if (top == 0x40) {
    if (buffered.size() < 4) return std::optional<size_t>{};
    if (!valid_channel_number(load_u16(buffered.data()), max_channel)) return Error::BadChannelNumber;
    return std::optional<size_t>{padded4(kChannelDataHeaderSize + load_u16(buffered.data() + 2))};
  }
  return Error::NotStun;
}

}  // namespace ferry::stun
