/*
 * Probe: what an input is. The container is identified from the bytes,
 * never from a file name, and the duration is measured rather than taken
 * from headers that may lie (a VBR MP3 without a Xing header, a WebM with
 * no Duration element, a WAV written to a pipe). ap_media_info_duration_method
 * tells which evidence produced the number.
 *
 * An ap_media_info_t is immutable once returned and may be read from any
 * number of threads.
 *
 * FFmpeg logging: the first call into the prober or decoder sets FFmpeg's
 * log level to AV_LOG_QUIET (once per process, through pthread_once), so
 * hostile inputs never flood stderr. av_log settings are process-wide: a
 * host that wants FFmpeg's messages can call av_log_set_level after that
 * first call, and then sees them for every FFmpeg user in the process.
 */
#ifndef AUDIOPIPE_PROBE_H
#define AUDIOPIPE_PROBE_H

#include <audiopipe/common.h>
#include <audiopipe/error.h>
#include <audiopipe/io.h>
#include <audiopipe/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ap_media_info ap_media_info_t;

/* How the duration was established, from least to most work. */
typedef enum ap_duration_method {
  AP_DURATION_UNKNOWN = 0,
  /* Exact from sizes the container states and the bytes present (PCM
   * data chunk clamped to the file, RF64 ds64, FLAC STREAMINFO). */
  AP_DURATION_HEADER = 1,
  /* Exact from an encoder's frame count (Xing/Info with LAME delay and
   * padding, MP4 sample tables with edit list). */
  AP_DURATION_FRAME_COUNT = 2,
  /* Timestamps of every packet, read without decoding (WebM without a
   * Duration element, Ogg without an end-of-stream page, VBR MP3). */
  AP_DURATION_PACKET_SCAN = 3,
  /* Samples counted while decoding: the ground truth, from ap_process. */
  AP_DURATION_DECODE = 4
} ap_duration_method_t;

/* Returns "header", "frame_count", "packet_scan", "decode" or "unknown". */
AP_EXPORT const char *ap_duration_method_name(ap_duration_method_t method);

/* Options for ap_probe. Initialise with ap_probe_options_init. */
typedef struct ap_probe_options {
  size_t struct_size; /* sizeof(ap_probe_options_t) */
  ap_limits_t limits;
  /* When non-zero, measure the duration by scanning every packet even if
   * the headers state one. Slower, and independent of header lies. */
  int always_scan;
} ap_probe_options_t;

AP_EXPORT void ap_probe_options_init(ap_probe_options_t *options);

/*
 * Probes `input`, reading from its current position. On success stores a
 * new media info in `*out`, to be freed with ap_media_info_free. `options`
 * may be NULL for the defaults. The format is chosen from the bytes alone.
 * A forward-only input may be read to its end (to measure a WAV written
 * to a pipe, or to scan packets), so it cannot be reused afterwards.
 * Fails with AP_ERR_EMPTY_INPUT, AP_ERR_MULTIPART_BODY, AP_ERR_NOT_AUDIO,
 * AP_ERR_UNSUPPORTED_CODEC, AP_ERR_CHANNELS_UNSUPPORTED,
 * AP_ERR_SAMPLE_RATE_UNSUPPORTED, AP_ERR_INPUT_TOO_LARGE,
 * AP_ERR_DURATION_LIMIT, AP_ERR_DECODE_TIME_LIMIT (max_decode_seconds
 * also bounds probing), AP_ERR_CORRUPT_INPUT (a known audio signature
 * whose header cannot be read) or AP_ERR_IO. Thread-safe for distinct
 * inputs.
 */
AP_EXPORT ap_status_t ap_probe(ap_io_t *input,
                               const ap_probe_options_t *options,
                               ap_media_info_t **out, ap_error_t *error);

/* Convenience wrapper: opens `path`, probes it, closes it. */
AP_EXPORT ap_status_t ap_probe_file(const char *path,
                                    const ap_probe_options_t *options,
                                    ap_media_info_t **out, ap_error_t *error);

AP_EXPORT void ap_media_info_free(ap_media_info_t *info);

/*
 * Getters. Strings belong to the media info. Numeric getters return 0 (or
 * a negative value where stated) when the property is unknown.
 */

/* Container short name: "wav", "rf64", "bw64", "mp3", "mp4", "ogg",
 * "webm", "matroska", "flac", "aiff", "aac" (ADTS), "caf", "wavpack",
 * "au", or the first name FFmpeg gives other demuxers. */
AP_EXPORT const char *ap_media_info_container(const ap_media_info_t *info);
/* Codec name as FFmpeg spells it: "mp3", "aac", "opus", "pcm_s24le". */
AP_EXPORT const char *ap_media_info_codec(const ap_media_info_t *info);
/* Codec profile when the codec has one ("LC", "HE-AAC"), else NULL. */
AP_EXPORT const char *ap_media_info_codec_profile(const ap_media_info_t *info);
AP_EXPORT int ap_media_info_sample_rate(const ap_media_info_t *info);
AP_EXPORT int ap_media_info_channels(const ap_media_info_t *info);
/* Layout name such as "mono", "stereo", "5.1(side)". */
AP_EXPORT const char *ap_media_info_channel_layout(const ap_media_info_t *info);
/* WAVE_FORMAT_EXTENSIBLE dwChannelMask, or the layout's mask; 0 if none. */
AP_EXPORT uint64_t ap_media_info_channel_mask(const ap_media_info_t *info);
/* Decoder output sample format: "s16", "s32", "flt", "fltp", ... */
AP_EXPORT const char *ap_media_info_sample_format(const ap_media_info_t *info);
/* Bits per coded sample for PCM and lossless codecs; 0 for lossy codecs. */
AP_EXPORT int ap_media_info_bits_per_sample(const ap_media_info_t *info);
/* The audio stream's bit rate in bits per second (not file size divided
 * by duration: cover art and tags are excluded). 0 if unknown. */
AP_EXPORT int64_t ap_media_info_bitrate(const ap_media_info_t *info);
/* 1 if the stream's bit rate varies (VBR), 0 if constant or unknown. */
AP_EXPORT int ap_media_info_is_vbr(const ap_media_info_t *info);
/* Duration in seconds after encoder delay and padding are removed; a
 * negative value when it could not be established. */
AP_EXPORT double ap_media_info_duration(const ap_media_info_t *info);
/* Duration in sample frames at the stream's sample rate; -1 if unknown. */
AP_EXPORT int64_t ap_media_info_duration_frames(const ap_media_info_t *info);
AP_EXPORT ap_duration_method_t
ap_media_info_duration_method(const ap_media_info_t *info);
/* Duration the headers claim, in seconds, or a negative value if none. */
AP_EXPORT double ap_media_info_header_duration(const ap_media_info_t *info);
/* Encoder delay (priming) and end padding in frames, as signalled by the
 * stream (LAME tag, Opus pre-skip, MP4 edit list). For MP3 these are the LAME
 * tag's own fields. A gapless decoder skips a further 529 samples of decoder
 * delay at the start and that many fewer at the end, so the duration is frames
 * x samples per frame - delay - padding. */
AP_EXPORT int64_t ap_media_info_encoder_delay(const ap_media_info_t *info);
AP_EXPORT int64_t ap_media_info_encoder_padding(const ap_media_info_t *info);
/* 1 if the input ends before the headers state it should. */
AP_EXPORT int ap_media_info_is_truncated(const ap_media_info_t *info);
/* Size of the input in bytes, or -1 if unknown. */
AP_EXPORT int64_t ap_media_info_input_bytes(const ap_media_info_t *info);

/* Tags, sanitised to valid UTF-8 without control characters. Keys are
 * lower case ("title", "artist"). */
AP_EXPORT size_t ap_media_info_tag_count(const ap_media_info_t *info);
AP_EXPORT const char *ap_media_info_tag_key(const ap_media_info_t *info,
                                            size_t index);
AP_EXPORT const char *ap_media_info_tag_value(const ap_media_info_t *info,
                                              size_t index);

/* Attached pictures (cover art). These are metadata; they are never
 * reported as streams. */
AP_EXPORT size_t ap_media_info_picture_count(const ap_media_info_t *info);
/* "image/jpeg", "image/png" or NULL. */
AP_EXPORT const char *ap_media_info_picture_mime(const ap_media_info_t *info,
                                                 size_t index);
AP_EXPORT int64_t ap_media_info_picture_bytes(const ap_media_info_t *info,
                                              size_t index);
AP_EXPORT int ap_media_info_picture_width(const ap_media_info_t *info,
                                          size_t index);
AP_EXPORT int ap_media_info_picture_height(const ap_media_info_t *info,
                                           size_t index);

/* Number of audio streams in the container; the first decodable one is
 * the one described above. */
AP_EXPORT int ap_media_info_audio_stream_count(const ap_media_info_t *info);

/*
 * Serialises the media info as a JSON object into a new NUL-terminated
 * string stored in `*json`; free it with ap_free.
 */
AP_EXPORT ap_status_t ap_media_info_to_json(const ap_media_info_t *info,
                                            char **json, ap_error_t *error);

/*
 * Classifies the first bytes of an object without FFmpeg: used to reject
 * uploads cheaply before probing. Reads at most `size` bytes at `data`.
 */
typedef enum ap_sniff_result {
  AP_SNIFF_UNKNOWN = 0,   /* no known signature: let the prober decide */
  AP_SNIFF_EMPTY = 1,     /* zero bytes */
  AP_SNIFF_AUDIO = 2,     /* a known audio container signature */
  AP_SNIFF_MULTIPART = 3, /* a multipart/form-data envelope */
  AP_SNIFF_NOT_AUDIO = 4  /* a known non-audio signature (HTML, PDF, ZIP,
                             images, JSON, executables) */
} ap_sniff_result_t;

/*
 * Sniffs a buffer; 4 KiB from the start of an object is enough. `*kind`
 * (if not NULL) is set to a static short name, or NULL for
 * AP_SNIFF_EMPTY and AP_SNIFF_UNKNOWN:
 *   audio: "wav", "rf64", "bw64", "aiff", "id3" (an ID3v2 tag, usually
 *          before MP3), "mp3", "aac" (ADTS), "flac", "ogg", "webm",
 *          "matroska", "mp4" (audio-only ISO BMFF brands), "caf",
 *          "wavpack", "au";
 *   not audio: "html", "xml", "json", "pdf", "zip", "png", "jpeg", "gif",
 *          "elf", "pe", "script", "text";
 *   multipart: "multipart".
 * An MPEG frame sync counts only when the next frame's header follows
 * where the first frame ends (if the buffer reaches that far).
 * Thread-safe.
 */
AP_EXPORT ap_sniff_result_t ap_sniff(const void *data, size_t size,
                                     const char **kind);

#ifdef __cplusplus
}
#endif

#endif
