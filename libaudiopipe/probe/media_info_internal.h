/*
 * The layout of ap_media_info_t, shared by the prober and the decoder that
 * fill it. Outside the probe area a media info is read only through the
 * public getters in <audiopipe/probe.h>.
 */
#ifndef AP_PROBE_MEDIA_INFO_INTERNAL_H
#define AP_PROBE_MEDIA_INFO_INTERNAL_H

#include <audiopipe/probe.h>

/* Tags beyond these counts and sizes are dropped or cut, so a hostile tag
 * block cannot grow the media info or the JSON without bound. */
#define AP_MEDIA_INFO_MAX_TAGS 64
#define AP_MEDIA_INFO_MAX_TAG_BYTES 1024
#define AP_MEDIA_INFO_MAX_PICTURES 8

typedef struct ap_media_picture {
  const char *mime; /* static string or NULL */
  int64_t bytes;
  int width;
  int height;
} ap_media_picture_t;

struct ap_media_info {
  /* Owned strings, NULL when unknown. */
  char *container;
  char *codec;
  char *codec_profile;
  char *channel_layout;
  char *sample_format;

  int sample_rate;
  int channels;
  uint64_t channel_mask;
  int bits_per_sample;
  int64_t bitrate;
  int is_vbr;

  int64_t duration_frames; /* -1 when unknown */
  ap_duration_method_t duration_method;
  double header_duration; /* seconds, negative when none */
  int64_t encoder_delay;
  int64_t encoder_padding;
  int truncated;
  int64_t input_bytes; /* -1 when unknown */
  int audio_stream_count;

  size_t tag_count;
  char *tag_keys[AP_MEDIA_INFO_MAX_TAGS];
  char *tag_values[AP_MEDIA_INFO_MAX_TAGS];

  size_t picture_count;
  ap_media_picture_t pictures[AP_MEDIA_INFO_MAX_PICTURES];
};

/* Allocates an empty media info with every property unknown. */
ap_media_info_t *ap_media_info_new(void);

/* Deep-copies `info`; NULL when out of memory. */
ap_media_info_t *ap_media_info_copy(const ap_media_info_t *info);

/* Replaces an owned string field with a copy of `value` (NULL clears it).
 * Returns 0, or -1 when out of memory. */
int ap_media_info_set_string(char **field, const char *value);

/*
 * Adds a tag after lower-casing the key and sanitising both strings to
 * valid UTF-8 without control characters, cut to
 * AP_MEDIA_INFO_MAX_TAG_BYTES. A key already present keeps its first
 * value. Returns 0, or -1 when out of memory. Tags past
 * AP_MEDIA_INFO_MAX_TAGS are dropped (and return 0).
 */
int ap_media_info_add_tag(ap_media_info_t *info, const char *key,
                          const char *value);

/*
 * Writes a sanitised copy of `size` bytes at `text` into a new string:
 * invalid UTF-8 sequences become U+FFFD, tab, CR and LF become a space,
 * other C0 controls, DEL and C1 controls are removed, and the result is
 * cut at a character boundary to at most `max_bytes` bytes. NULL when out
 * of memory.
 */
char *ap_sanitize_utf8(const char *text, size_t size, size_t max_bytes);

#endif
