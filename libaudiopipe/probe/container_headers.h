/*
 * Parsers for the container headers whose sizes the prober reads itself
 * rather than trusting FFmpeg's estimate: RIFF/RF64/BW64 WAVE and AIFF
 * (PCM data size), MPEG audio (Xing/Info/VBRI and LAME tags, frame scan)
 * and FLAC STREAMINFO. Each reads through an ap_byte_source_t, allocates
 * nothing from sizes in the file, and bounds its loops.
 */
#ifndef AP_PROBE_CONTAINER_HEADERS_H
#define AP_PROBE_CONTAINER_HEADERS_H

#include <stdint.h>

#include "probe/avio_bridge.h"
#include "probe/sniff_internal.h"

/* WAVE format tags the PCM duration rule applies to. */
#define AP_WAVE_FORMAT_PCM 0x0001
#define AP_WAVE_FORMAT_IEEE_FLOAT 0x0003
#define AP_WAVE_FORMAT_ALAW 0x0006
#define AP_WAVE_FORMAT_MULAW 0x0007
#define AP_WAVE_FORMAT_EXTENSIBLE 0xFFFE

typedef struct ap_pcm_header {
  int found;             /* 1 when a RIFF/RF64/BW64 WAVE or AIFF was parsed */
  const char *container; /* "wav", "rf64", "bw64", "aiff" */
  int format_tag;        /* the SubFormat's tag for WAVE_FORMAT_EXTENSIBLE */
  int is_pcm;            /* frames follow from bytes / block_align */
  int channels;
  int64_t sample_rate; /* as stated, so a rate past INT_MAX is reported */
  int block_align;
  int bits_per_sample; /* container bits (wBitsPerSample) */
  int valid_bits;      /* wValidBitsPerSample, else bits_per_sample */
  uint64_t channel_mask;
  int64_t data_offset;     /* of the first sample byte, -1 if none */
  int64_t declared_bytes;  /* the data size the header states, -1 if it
                              is a streaming marker (0 or 0xFFFFFFFF) */
  int64_t present_bytes;   /* data bytes in the input, -1 if unknown */
  int64_t frames;          /* sample frames present, -1 if unknown */
  int64_t declared_frames; /* frames the header claims, -1 if none */
  int truncated;           /* the header claims more than is present */
} ap_pcm_header_t;

/* Parses a WAVE or AIFF header. Sets `header->found` to 0 for other
 * inputs. Fails only on read errors. */
ap_status_t ap_pcm_header_parse(ap_byte_source_t *source,
                                ap_pcm_header_t *header, ap_error_t *error);

typedef struct ap_mp3_header {
  int found;           /* 1 when an MPEG audio frame was found */
  int64_t id3_bytes;   /* ID3v2 tags before the first frame */
  int64_t first_frame; /* offset of the first frame header */
  ap_mpeg_audio_header_t frame;
  int has_vbr_header;    /* Xing, Info or VBRI present */
  int is_vbr;            /* Xing or VBRI (Info marks CBR) */
  int64_t header_frames; /* frame count in the VBR header, -1 if none */
  int64_t header_bytes;  /* byte count in the VBR header, -1 if none */
  /* 1 when header_frames agrees with the bytes it covers (the VBR
   * header's byte count, else the input's size): their mean bit rate is
   * one MPEG audio allows, and for a CBR Info header the frame's own. */
  int header_frames_plausible;
  int has_lame;        /* the LAME tag's delay and padding are valid */
  int encoder_delay;   /* samples, from the LAME tag */
  int encoder_padding; /* samples, from the LAME tag */
} ap_mp3_header_t;

/* Finds the first MPEG audio frame after any ID3v2 tags and parses its
 * VBR and LAME headers. Sets `header->found` to 0 when there is none. */
ap_status_t ap_mp3_header_parse(ap_byte_source_t *source,
                                ap_mp3_header_t *header, ap_error_t *error);

/* Counts audio frames (excluding the VBR header frame) and their bytes by
 * walking every frame header from the first frame, resynchronising past
 * junk. `*varies` is set when the bit rate changes between frames. */
ap_status_t ap_mp3_scan_frames(ap_byte_source_t *source,
                               const ap_mp3_header_t *header, int64_t *frames,
                               int64_t *bytes, int *varies, ap_error_t *error);

/* Reads STREAMINFO after "fLaC" (and any ID3v2 tag). `*total_samples` is
 * 0 when the encoder did not know it. Returns 1 when found. */
int ap_flac_streaminfo_parse(ap_byte_source_t *source, int *sample_rate,
                             int *channels, int *bits, int64_t *total_samples);

/* Returns the byte length of the ID3v2 tags at `offset` (0 if none). */
int64_t ap_id3v2_length(ap_byte_source_t *source, int64_t offset);

#endif
