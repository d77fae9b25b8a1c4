/*
 * Facts about each rendition codec shared by the spec checks and the
 * encoder sink: FFmpeg encoder and muxer names, bit-rate ranges and the
 * sample rates each codec can encode.
 */
#ifndef AP_RENDITION_INTERNAL_H
#define AP_RENDITION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <audiopipe/rendition.h>

/* Maximum length of a spec's name, without the terminating NUL. */
#define AP_RENDITION_NAME_MAX 64

typedef struct ap_rendition_codec_info {
  ap_rendition_codec_t codec;
  const char *name;    /* "opus", as ap_rendition_codec_name returns */
  const char *encoder; /* FFmpeg encoder name */
  const char *muxer;   /* FFmpeg muxer name */
  int lossy;
  int64_t default_bitrate; /* bits per second; 0 for lossless codecs */
  int64_t min_bitrate;
  int64_t max_bitrate;
  /* Sample rates the encoder accepts, ascending and 0-terminated; NULL
   * means any rate from min_sample_rate to max_sample_rate. */
  const int *sample_rates;
  int min_sample_rate;
  int max_sample_rate;
  /* Maximum channel count when the spec keeps the source layout. */
  int max_channels;
} ap_rendition_codec_info_t;

/* Returns the table entry of `codec`, or NULL for an invalid value. */
const ap_rendition_codec_info_t *
ap_rendition_codec_info(ap_rendition_codec_t codec);

/*
 * Picks the rate `info` encodes for a spec rate of `requested` (0 keeps
 * `source_rate`) and a bit rate of `bitrate` bits per second: the
 * requested rate when the codec supports it, otherwise the nearest
 * supported rate, preferring the higher one on a tie. FLAC rates from
 * 65535 Hz up are rounded to a multiple of 10 Hz. MP3 skips rates whose
 * MPEG version cannot reach `bitrate`: above 64 kb/s no MPEG-2.5 (8 to
 * 12 kHz), above 160 kb/s only MPEG-1 (32, 44.1 and 48 kHz). AAC skips
 * rates where `bitrate` over `channels` exceeds
 * ap_rendition_aac_max_bitrate.
 */
int ap_rendition_pick_sample_rate(const ap_rendition_codec_info_t *info,
                                  int requested, int source_rate,
                                  int64_t bitrate, int channels);

/* Returns the highest AAC bit rate in bits per second at `sample_rate`
 * for `channels` channels: 6144 bits per channel per 1024-sample frame
 * (ISO/IEC 14496-3), the cap FFmpeg's encoder clamps to. */
int64_t ap_rendition_aac_max_bitrate(int sample_rate, int channels);

/* Returns the bit rate a lossy spec encodes at in bits per second: its own,
 * or the codec's default, lowered for MP3 at an explicit MPEG-2.5 rate
 * (64 kb/s at most). Returns 0 for lossless codecs. */
int64_t ap_rendition_effective_bitrate(const ap_rendition_spec_t *spec);

/* Writes the name of a rendition into `buffer` (at least
 * AP_RENDITION_NAME_MAX + 1 bytes): the spec's name, or one derived from
 * codec and bit rate ("opus_64k") or bit depth ("flac_16bit"). */
void ap_rendition_derive_name(const ap_rendition_spec_t *spec, char *buffer,
                              size_t size);

#endif
