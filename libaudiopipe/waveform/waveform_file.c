/*
 * The two file forms of BBC audiowaveform (1.10): writing .dat version 2
 * and JSON from an in-memory waveform, parsing .dat versions 1 and 2, and
 * converting .dat to JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <audiopipe/waveform.h>

#include "core/error_internal.h"
#include "waveform/waveform_internal.h"

#define DAT_VERSION_1_HEADER_SIZE 20
#define DAT_VERSION_2_HEADER_SIZE 24
#define DAT_FLAG_8_BIT 0x1u

/* Bytes staged before each ap_output_write. */
#define WRITE_BUFFER_SIZE (64 * 1024)

/* Maximum text length, with the terminating NUL, of the JSON header (six
 * fields of at most 11 digits plus the keys, with room to spare) and of
 * one value with its comma (",-32768"). */
#define JSON_HEADER_MAX 256
#define JSON_VALUE_MAX 8

/* A fixed buffer in front of an output. */
typedef struct write_buffer {
  ap_output_t *output;
  unsigned char *bytes;
  size_t used;
} write_buffer_t;

static ap_status_t buffer_flush(write_buffer_t *buffer, ap_error_t *error) {
  if (buffer->used == 0) {
    return AP_OK;
  }
  ap_status_t status =
      ap_output_write(buffer->output, buffer->bytes, buffer->used, error);
  buffer->used = 0;
  return status;
}

/* Makes room for `size` bytes (at most WRITE_BUFFER_SIZE). */
static ap_status_t buffer_reserve(write_buffer_t *buffer, size_t size,
                                  ap_error_t *error) {
  if (WRITE_BUFFER_SIZE - buffer->used >= size) {
    return AP_OK;
  }
  return buffer_flush(buffer, error);
}

static void put_uint32_le(unsigned char *bytes, uint32_t value) {
  bytes[0] = (unsigned char)(value & 0xFFu);
  bytes[1] = (unsigned char)((value >> 8) & 0xFFu);
  bytes[2] = (unsigned char)((value >> 16) & 0xFFu);
  bytes[3] = (unsigned char)((value >> 24) & 0xFFu);
}

static uint32_t get_uint32_le(const unsigned char *bytes) {
  return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 |
         (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

/* Reads a little-endian two's complement int32 without relying on an
 * implementation-defined unsigned-to-signed conversion. */
static int32_t get_int32_le(const unsigned char *bytes) {
  uint32_t value = get_uint32_le(bytes);
  if (value <= INT32_MAX) {
    return (int32_t)value;
  }
  return (int32_t)(value - 0x80000000u) - INT32_MAX - 1;
}

/* Stores the number of values (pixels x channels x 2) in `count`. Fails
 * when the array's byte size would not fit in size_t. */
static ap_status_t value_count(uint32_t length, int channels, size_t *count,
                               ap_error_t *error) {
  size_t per_pixel = (size_t)channels * 2;
  if (length > 0 && per_pixel > SIZE_MAX / sizeof(int16_t) / length) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_NO_MEMORY,
                        "a waveform of %lu pixels x %d channels does not fit "
                        "in memory on this platform",
                        (unsigned long)length, channels);
  }
  *count = (size_t)length * per_pixel;
  return AP_OK;
}

static ap_status_t write_dat(const ap_waveform_t *waveform,
                             write_buffer_t *buffer, size_t count,
                             ap_error_t *error) {
  unsigned char *header = buffer->bytes;
  put_uint32_le(header + 0, 2);
  put_uint32_le(header + 4, waveform->bits == 8 ? DAT_FLAG_8_BIT : 0);
  put_uint32_le(header + 8, (uint32_t)waveform->sample_rate);
  put_uint32_le(header + 12, (uint32_t)waveform->samples_per_pixel);
  put_uint32_le(header + 16, waveform->length);
  put_uint32_le(header + 20, (uint32_t)waveform->channels);
  buffer->used = DAT_VERSION_2_HEADER_SIZE;

  size_t value_size = waveform->bits == 8 ? 1 : 2;
  for (size_t i = 0; i < count; i++) {
    ap_status_t status = buffer_reserve(buffer, value_size, error);
    if (status != AP_OK) {
      return status;
    }

    /* Two's complement bytes of the value, low byte first. */
    uint16_t bits = (uint16_t)waveform->values[i];
    buffer->bytes[buffer->used++] = (unsigned char)(bits & 0xFFu);
    if (value_size == 2) {
      buffer->bytes[buffer->used++] = (unsigned char)(bits >> 8);
    }
  }
  return AP_OK;
}

static ap_status_t write_json(const ap_waveform_t *waveform,
                              write_buffer_t *buffer, size_t count,
                              ap_error_t *error) {
  /* Keys in audiowaveform's order, which some readers depend on. */
  int written = snprintf((char *)buffer->bytes, JSON_HEADER_MAX,
                         "{\"version\":2,\"channels\":%d,\"sample_rate\":%d,"
                         "\"samples_per_pixel\":%d,\"bits\":%d,\"length\":%lu,"
                         "\"data\":[",
                         waveform->channels, waveform->sample_rate,
                         waveform->samples_per_pixel, waveform->bits,
                         (unsigned long)waveform->length);
  if (written < 0 || written >= JSON_HEADER_MAX) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "the JSON waveform header did not fit in %d bytes",
                        JSON_HEADER_MAX);
  }
  buffer->used = (size_t)written;

  for (size_t i = 0; i < count; i++) {
    ap_status_t status = buffer_reserve(buffer, JSON_VALUE_MAX, error);
    if (status != AP_OK) {
      return status;
    }
    char *cursor = (char *)buffer->bytes + buffer->used;
    written = snprintf(cursor, JSON_VALUE_MAX, i == 0 ? "%d" : ",%d",
                       waveform->values[i]);
    buffer->used += (size_t)written;
  }

  ap_status_t status = buffer_reserve(buffer, 2, error);
  if (status != AP_OK) {
    return status;
  }
  buffer->bytes[buffer->used++] = ']';
  buffer->bytes[buffer->used++] = '}';
  return AP_OK;
}

ap_status_t ap_waveform_write(const ap_waveform_t *waveform,
                              ap_waveform_format_t format, ap_output_t *output,
                              ap_error_t *error) {
  if (!waveform || !output) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "ap_waveform_write: waveform and output are required");
  }
  if (format != AP_WAVEFORM_DAT && format != AP_WAVEFORM_JSON) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "waveform format %d is invalid: use AP_WAVEFORM_DAT "
                        "or AP_WAVEFORM_JSON",
                        (int)format);
  }

  size_t count = 0;
  ap_status_t status =
      value_count(waveform->length, waveform->channels, &count, error);
  if (status != AP_OK) {
    return status;
  }

  write_buffer_t buffer = {.output = output, .used = 0};
  buffer.bytes = malloc(WRITE_BUFFER_SIZE);
  if (!buffer.bytes) {
    return AP_NO_MEMORY(error);
  }

  if (format == AP_WAVEFORM_DAT) {
    status = write_dat(waveform, &buffer, count, error);
  } else {
    status = write_json(waveform, &buffer, count, error);
  }
  if (status == AP_OK) {
    status = buffer_flush(&buffer, error);
  }
  free(buffer.bytes);
  return status;
}

/* Checks the header fields shared by both versions. */
static ap_status_t check_header(const ap_waveform_t *waveform,
                                ap_error_t *error) {
  if (waveform->sample_rate <= 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "waveform sample rate %d is invalid: it must be "
                        "positive",
                        waveform->sample_rate);
  }
  if (waveform->samples_per_pixel <= 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "waveform samples per pixel %d is invalid: it must "
                        "be positive",
                        waveform->samples_per_pixel);
  }
  if (waveform->channels < 1 || waveform->channels > AP_WAVEFORM_MAX_CHANNELS) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "waveform channel count %d is invalid: it must be "
                        "1 to %d",
                        waveform->channels, AP_WAVEFORM_MAX_CHANNELS);
  }
  return AP_OK;
}

ap_status_t ap_waveform_parse_dat(const void *data, size_t size,
                                  ap_waveform_t **out, ap_error_t *error) {
  if (!out || (!data && size > 0)) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "ap_waveform_parse_dat: data and out are required");
  }
  *out = NULL;
  if (size == 0) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_EMPTY_INPUT,
                        "the waveform data is empty: pass the bytes of a "
                        ".dat file");
  }

  const unsigned char *bytes = data;
  if (size < 4) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "the waveform data is truncated: %zu bytes cannot "
                        "hold the version field",
                        size);
  }
  int32_t version = get_int32_le(bytes);
  if (version != 1 && version != 2) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_UNSUPPORTED,
                        "waveform version %d is not supported: only .dat "
                        "versions 1 and 2 can be read",
                        (int)version);
  }
  size_t header_size =
      version == 1 ? DAT_VERSION_1_HEADER_SIZE : DAT_VERSION_2_HEADER_SIZE;
  if (size < header_size) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "the waveform header is truncated: version %d needs "
                        "%zu bytes, the data has %zu",
                        (int)version, header_size, size);
  }

  ap_waveform_t header = {0};
  header.version = (int)version;
  header.bits = (get_uint32_le(bytes + 4) & DAT_FLAG_8_BIT) ? 8 : 16;
  header.sample_rate = get_int32_le(bytes + 8);
  header.samples_per_pixel = get_int32_le(bytes + 12);
  header.length = get_uint32_le(bytes + 16);
  header.channels = version == 1 ? 1 : get_int32_le(bytes + 20);
  ap_status_t status = check_header(&header, error);
  if (status != AP_OK) {
    return status;
  }

  /* Compare sizes before allocating, so a hostile length costs nothing.
   * The product is below 2^43, so it cannot wrap in 64 bits. */
  uint64_t value_size = header.bits == 8 ? 1 : 2;
  uint64_t count64 = (uint64_t)header.length * (uint64_t)header.channels * 2;
  uint64_t expected_size = count64 * value_size;
  size_t data_size = size - header_size;
  if (expected_size > data_size) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "the waveform is truncated: its header declares %lu "
                        "pixels x %d channels of %d-bit values (%llu data "
                        "bytes), but only %zu data bytes follow",
                        (unsigned long)header.length, header.channels,
                        header.bits, (unsigned long long)expected_size,
                        data_size);
  }
  if (expected_size != data_size) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_CORRUPT_INPUT,
                        "the waveform is inconsistent: its header declares "
                        "%lu pixels x %d channels (%llu data bytes), but %zu "
                        "data bytes follow",
                        (unsigned long)header.length, header.channels,
                        (unsigned long long)expected_size, data_size);
  }
  size_t count = (size_t)count64; /* at most data_size, so it fits */

  ap_waveform_t *waveform = malloc(sizeof *waveform);
  if (!waveform) {
    return AP_NO_MEMORY(error);
  }
  *waveform = header;
  if (count > 0) {
    waveform->values = malloc(count * sizeof(int16_t));
    if (!waveform->values) {
      free(waveform);
      return AP_NO_MEMORY(error);
    }
  }

  const unsigned char *cursor = bytes + header_size;
  for (size_t i = 0; i < count; i++) {
    if (value_size == 1) {
      waveform->values[i] = (int16_t)(int8_t)cursor[i];
    } else {
      uint16_t bits = (uint16_t)(cursor[2 * i] | cursor[2 * i + 1] << 8);
      waveform->values[i] =
          bits <= INT16_MAX ? (int16_t)bits : (int16_t)((int)bits - 65536);
    }
  }
  *out = waveform;
  return AP_OK;
}

void ap_waveform_free(ap_waveform_t *waveform) {
  if (!waveform) {
    return;
  }
  free(waveform->values);
  free(waveform);
}

int ap_waveform_version(const ap_waveform_t *waveform) {
  return waveform ? waveform->version : 0;
}

int ap_waveform_channels(const ap_waveform_t *waveform) {
  return waveform ? waveform->channels : 0;
}

int ap_waveform_sample_rate(const ap_waveform_t *waveform) {
  return waveform ? waveform->sample_rate : 0;
}

int ap_waveform_samples_per_pixel(const ap_waveform_t *waveform) {
  return waveform ? waveform->samples_per_pixel : 0;
}

int ap_waveform_bits(const ap_waveform_t *waveform) {
  return waveform ? waveform->bits : 0;
}

int64_t ap_waveform_length(const ap_waveform_t *waveform) {
  return waveform ? (int64_t)waveform->length : 0;
}

/* Index of the min value of `channel` in `pixel`, or -1 when out of
 * range. */
static int64_t value_index(const ap_waveform_t *waveform, int64_t pixel,
                           int channel) {
  if (!waveform || pixel < 0 || pixel >= (int64_t)waveform->length ||
      channel < 0 || channel >= waveform->channels) {
    return -1;
  }
  return (pixel * waveform->channels + channel) * 2;
}

int ap_waveform_min(const ap_waveform_t *waveform, int64_t pixel, int channel) {
  int64_t index = value_index(waveform, pixel, channel);
  return index < 0 ? 0 : waveform->values[index];
}

int ap_waveform_max(const ap_waveform_t *waveform, int64_t pixel, int channel) {
  int64_t index = value_index(waveform, pixel, channel);
  return index < 0 ? 0 : waveform->values[index + 1];
}

ap_status_t ap_waveform_dat_to_json(const void *data, size_t size,
                                    ap_output_t *output, ap_error_t *error) {
  if (!output) {
    return ap_error_set(error, AP_DOMAIN_MEDIA, AP_ERR_INVALID_ARGUMENT,
                        "ap_waveform_dat_to_json: output is required");
  }
  ap_waveform_t *waveform = NULL;
  ap_status_t status = ap_waveform_parse_dat(data, size, &waveform, error);
  if (status != AP_OK) {
    return status;
  }
  status = ap_waveform_write(waveform, AP_WAVEFORM_JSON, output, error);
  ap_waveform_free(waveform);
  return status;
}
