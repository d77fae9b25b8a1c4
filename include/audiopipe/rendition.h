/*
 * Renditions: transcoded copies produced from the same decode pass as the
 * analysis. Each rendition has its own encoder, resampler and channel
 * mixer (libswresample), and runs on its own worker thread when the
 * process options allow more than one thread.
 */
#ifndef AUDIOPIPE_RENDITION_H
#define AUDIOPIPE_RENDITION_H

#include <audiopipe/common.h>
#include <audiopipe/error.h>
#include <audiopipe/io.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ap_rendition_codec {
  AP_RENDITION_OPUS = 0, /* Opus in Ogg (libopus), 48 kHz */
  AP_RENDITION_MP3 = 1,  /* MP3 (libmp3lame) with a LAME/Xing header */
  AP_RENDITION_AAC = 2,  /* AAC-LC in M4A, `moov` before `mdat` */
  AP_RENDITION_FLAC = 3, /* FLAC, lossless */
  AP_RENDITION_WAV = 4   /* PCM WAV, 16 or 24 bit; RF64 over 4 GiB */
} ap_rendition_codec_t;

/* Returns "opus", "mp3", "aac", "flac", "wav"; NULL for invalid values. */
AP_EXPORT const char *ap_rendition_codec_name(ap_rendition_codec_t codec);

/* Parses a codec name as returned above. Returns AP_OK or
 * AP_ERR_INVALID_ARGUMENT naming the value. */
AP_EXPORT ap_status_t ap_rendition_codec_parse(const char *name,
                                               ap_rendition_codec_t *codec,
                                               ap_error_t *error);

/* One rendition to produce. Initialise with ap_rendition_spec_init. */
typedef struct ap_rendition_spec {
  size_t struct_size; /* sizeof(ap_rendition_spec_t) */
  ap_rendition_codec_t codec;
  /* Target bit rate in bits per second for lossy codecs (0: the codec's
   * default: Opus 64000, MP3 128000, AAC 128000). Ignored for FLAC/WAV. */
  int64_t bitrate;
  /* Output sample rate in Hz, 0 to keep the source rate (Opus always
   * encodes at 48 kHz; MP3 and AAC pick the nearest rate they support). */
  int sample_rate;
  /* Output channels: 0 keeps the source layout, 1 mixes to mono, 2 to
   * stereo. Other values are rejected. */
  int channels;
  /* Bits per sample for WAV and FLAC output: 16 or 24; 0 for 16. */
  int bits_per_sample;
  /* Loudness normalisation: when `normalize` is non-zero the rendition is
   * scaled to `target_lufs` integrated loudness, with the gain reduced
   * further if the true peak would exceed `true_peak_ceiling_dbtp`. This
   * needs the loudness before encoding, so ap_process decodes the input
   * twice (see docs/architecture.md for the cost). */
  int normalize;
  double target_lufs;            /* for example -16.0 or -23.0 */
  double true_peak_ceiling_dbtp; /* for example -1.0 */
  /* Name reported in the result ("opus_64k"); copied. NULL: derived from
   * codec and bit rate. */
  const char *name;
  ap_output_t *output; /* borrowed; finished by ap_process */
} ap_rendition_spec_t;

/* Defaults: Opus at 64 kb/s, source rate and layout, no normalisation
 * (target −16 LUFS and ceiling −1 dBTP when enabled), no output. */
AP_EXPORT void ap_rendition_spec_init(ap_rendition_spec_t *spec);

/* Checks a spec without running anything; the error names the field. */
AP_EXPORT ap_status_t ap_rendition_spec_validate(
    const ap_rendition_spec_t *spec, ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
