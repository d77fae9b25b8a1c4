/*
 * MPEG audio frame headers, shared by the sniffer and the MP3 duration
 * parser.
 */
#ifndef AP_PROBE_SNIFF_INTERNAL_H
#define AP_PROBE_SNIFF_INTERNAL_H

typedef struct ap_mpeg_audio_header {
  int mpeg1;             /* 1 for MPEG-1, 0 for MPEG-2 and 2.5 */
  int layer;             /* 1, 2 or 3 */
  int sample_rate;       /* Hz */
  int bitrate;           /* bits per second */
  int channels;          /* 1 or 2 */
  int samples_per_frame; /* 384, 576 or 1152 */
  int frame_bytes;       /* including the header and padding */
  int crc;               /* 1 when a 16-bit CRC follows the header */
} ap_mpeg_audio_header_t;

/* Parses the 4 bytes at `header`. Returns 1 and fills `out` (which may be
 * NULL) for a valid header, 0 otherwise. Free-format frames (bit rate
 * index 0) are rejected because their length cannot be computed. */
int ap_sniff_mpeg_audio_header(const unsigned char *header,
                               ap_mpeg_audio_header_t *out);

#endif
