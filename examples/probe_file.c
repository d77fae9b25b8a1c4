/*
 * Tutorial: probe an audio file with libaudiopipe and print a few facts.
 *
 *   probe_file case.mp3
 *
 * Build it inside the project (it is part of the normal build) or against
 * an installed library:
 *
 *   cc probe_file.c $(pkg-config --cflags --libs libaudiopipe)
 */
#include <stdio.h>

#include <audiopipe/audiopipe.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }

  /* Every call that can fail returns an ap_status_t and fills an
   * ap_error_t, which must start zeroed. */
  ap_error_t error = {0};

  /* An ap_io_t is the input of every media operation. A file is the
   * simplest; ap_io_open_memory and ap_io_open_callbacks read buffers and
   * remote objects without a temporary copy. */
  ap_io_t *input = NULL;
  if (ap_io_open_file(argv[1], &input, &error) != AP_OK) {
    fprintf(stderr, "cannot open %s: %s (%s)\n", argv[1], error.message,
            ap_error_code_name((int)error.code));
    return 1;
  }

  /* Probe options carry the resource limits; the defaults suit uploads.
   * The container is identified from the bytes, never the file name, and
   * the duration is measured rather than copied from the headers. */
  ap_probe_options_t options;
  ap_probe_options_init(&options);

  ap_media_info_t *info = NULL;
  ap_status_t status = ap_probe(input, &options, &info, &error);
  ap_io_close(input);
  if (status != AP_OK) {
    fprintf(stderr, "cannot probe %s: %s (%s)\n", argv[1], error.message,
            ap_error_code_name((int)error.code));
    return 1;
  }

  /* Getters return a value for every field (0 or NULL when unknown), and
   * the strings belong to the media info. */
  printf("container: %s\n", ap_media_info_container(info));
  printf("codec: %s\n", ap_media_info_codec(info));
  printf("sample_rate: %d\n", ap_media_info_sample_rate(info));
  printf("channels: %d\n", ap_media_info_channels(info));
  printf("duration: %.3f s (%s)\n", ap_media_info_duration(info),
         ap_duration_method_name(ap_media_info_duration_method(info)));

  ap_media_info_free(info);
  return 0;
}
