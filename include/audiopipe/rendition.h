/*
 * Renditions: transcoded copies produced from the same decode pass as the
 * analysis. Each rendition has its own encoder, resampler and channel
 * mixer (libswresample), and runs on its own worker thread when the
 * process options allow more than one thread.
 *
 * Outputs are gapless: Ogg Opus states its pre-skip and end granule, MP3
 * has a Xing/Info frame with the LAME delay and padding, and M4A an edit
 * list in a time scale equal to the sample rate. MP3, FLAC and WAV
 * rewrite their header at the end, and M4A moves `moov` before `mdat`.
 * So when the output cannot seek (and always for M4A) the rendition is
 * written to a temporary file in $TMPDIR (or /tmp) and copied to the
 * output at the end. That directory needs room for one rendition.
 *
 * Channel mixing follows ITU-R BS.775 with libswresample: centre and
 * surround channels enter the front pair at -3 dB, LFE is dropped, and
 * the matrix is scaled so no output can exceed full scale. So 5.1 to
 * stereo is L = (FL + 0.707 FC + 0.707 SL) / 2.414, and stereo to mono
 * is (L + R) / 2, which cancels content that is in opposite phase.
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
  /* Output sample rate in Hz, 0 to keep the source rate.
   * - Opus accepts only 0 or 48000 and always encodes at 48 kHz.
   * - MP3 and AAC accept the rates of their standards. From a source rate
   *   they do not support, or one too low for the bit rate, they pick the
   *   nearest rate that carries the bit rate.
   * - MP3 reaches 64 kb/s at 8 to 12 kHz, 160 kb/s at 16 to 24 kHz and
   *   320 kb/s from 32 kHz. At an explicit rate of 8 to 12 kHz it
   *   defaults to 64 kb/s.
   * - AAC carries at most 6 bits per sample and channel (6144 bits per
   *   1024-frame block). An explicit rate below that fails with
   *   AP_ERR_INVALID_ARGUMENT when encoding starts.
   * - FLAC accepts 1 to 655340 Hz (multiples of 10 Hz from 65535 Hz up)
   *   and WAV 1 to 768000 Hz. */
  int sample_rate;
  /* Output channels: 0 keeps the source layout, 1 mixes to mono, 2 to
   * stereo. Other values are rejected. Keeping the source layout keeps
   * up to 2 channels for Opus, MP3 and AAC, 8 for FLAC and 32 for WAV;
   * wider sources are mixed to stereo. Mono Opus allows at most
   * 256 kb/s: the spec check rejects more when channels is 1, and a mono
   * source with channels 0 fails with AP_ERR_INVALID_ARGUMENT when
   * encoding starts. */
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
AP_EXPORT ap_status_t
ap_rendition_spec_validate(const ap_rendition_spec_t *spec, ap_error_t *error);

#ifdef __cplusplus
}
#endif

#endif
