/*
 * Test helper for the HTTP end-to-end tests: plays the part of a worker
 * through the library's job and asset APIs, on the backends named by the
 * same AUDIOPIPE_* variables the server reads.
 *
 *   http_job_driver enqueue OWNER              prints the new job's id
 *   http_job_driver claim                      prints "JOB_ID TOKEN"
 *   http_job_driver progress JOB TOKEN FRACTION STAGE
 *                                              prints the commit time
 *   http_job_driver complete JOB TOKEN
 *   http_job_driver attach ASSET_ID            adds a waveform and a
 *                                              rendition to the asset
 *
 * Jobs it enqueues have the kind "http_test", so a real worker that
 * claims only process_asset jobs never takes them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <audiopipe/audiopipe.h>
#include <audiopipe/context.h>
#include <audiopipe/job.h>
#include <audiopipe/meta.h>

#include "context/context_internal.h"
#include "storage/object_store.h"

#define TEST_JOB_KIND "http_test"

static int fail(const char *step, const ap_error_t *error) {
  fprintf(stderr, "http_job_driver: %s failed: %s (%s)\n", step, error->message,
          ap_error_code_name((int)error->code));
  return 1;
}

static int enqueue(ap_context_t *context, const char *owner) {
  ap_job_enqueue_options_t options;
  ap_job_enqueue_options_init(&options);
  options.kind = TEST_JOB_KIND;
  options.owner = owner;
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  if (ap_job_enqueue(context, &options, &job, &error) != AP_OK) {
    return fail("enqueue", &error);
  }
  printf("%s\n", ap_job_id(job));
  ap_job_free(job);
  return 0;
}

static int claim(ap_context_t *context) {
  const char *kinds[] = {TEST_JOB_KIND};
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  if (ap_job_claim(context, "http-test-driver", 600000, kinds, 1, &job,
                   &error) != AP_OK) {
    return fail("claim", &error);
  }
  if (!job) {
    fprintf(stderr, "http_job_driver: no %s job is queued\n", TEST_JOB_KIND);
    return 1;
  }
  printf("%s %s\n", ap_job_id(job), ap_job_claim_token(job));
  ap_job_free(job);
  return 0;
}

/* Records progress and prints the Unix time, in seconds, at which the
 * update was committed, so the test measures event latency from there. */
static int progress(ap_context_t *context, const char *job_id,
                    const char *token, double fraction, const char *stage) {
  ap_error_t error = {0};
  if (ap_job_progress(context, job_id, token, fraction, stage, &error) !=
      AP_OK) {
    return fail("progress", &error);
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  printf("%.6f\n", (double)now.tv_sec + (double)now.tv_nsec / 1e9);
  return 0;
}

/* A .dat waveform (audiowaveform version 2): 8-bit, one channel, 4
 * pixels at 441 samples per pixel and 44100 Hz. */
static size_t build_waveform(unsigned char *out) {
  const int32_t header[] = {2, 1, 44100, 441, 4, 1};
  const int8_t pixels[] = {-10, 10, -100, 100, -1, 1, 0, 0};
  memcpy(out, header, sizeof header);
  memcpy(out + sizeof header, pixels, sizeof pixels);
  return sizeof header + sizeof pixels;
}

static int attach(ap_context_t *context, const char *asset_id) {
  ap_asset_t *asset = NULL;
  ap_error_t error = {0};
  if (ap_asset_get(context, NULL, asset_id, &asset, &error) != AP_OK) {
    return fail("asset lookup", &error);
  }

  char key[256];
  snprintf(key, sizeof key, "derived/%s/peaks_8bit.dat", asset_id);
  unsigned char waveform[64];
  size_t size = build_waveform(waveform);
  ap_output_t *output = NULL;
  ap_status_t status =
      ap_object_store_open_write(ap_context_object_store(context), key,
                                 "application/octet-stream", &output, &error);
  if (status == AP_OK) {
    status = ap_output_write(output, waveform, size, &error);
  }
  if (status == AP_OK) {
    status = ap_output_finish(output, &error);
  }
  ap_output_close(output);
  if (status == AP_OK) {
    status = ap_asset_put_waveform(context, asset_id, "peaks_8bit", key,
                                   (int64_t)size, &error);
  }
  /* The original bytes stand in for a transcoded rendition. */
  if (status == AP_OK) {
    status = ap_asset_put_rendition(
        context, asset_id, "mp3_128k", ap_asset_object_key(asset),
        ap_asset_content_type(asset), ap_asset_size_bytes(asset), &error);
  }
  ap_asset_free(asset);
  return status == AP_OK ? 0 : fail("attach", &error);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs("usage: http_job_driver enqueue|claim|progress|complete|attach "
          "...\n",
          stderr);
    return 2;
  }
  ap_config_t *config = NULL;
  ap_context_t *context = NULL;
  ap_error_t error = {0};
  if (ap_config_from_env(&config, &error) != AP_OK) {
    return fail("configuration", &error);
  }
  if (ap_context_open(config, &context, &error) != AP_OK) {
    ap_config_free(config);
    return fail("context", &error);
  }

  int result = 2;
  const char *command = argv[1];
  if (strcmp(command, "enqueue") == 0 && argc == 3) {
    result = enqueue(context, argv[2]);
  } else if (strcmp(command, "claim") == 0 && argc == 2) {
    result = claim(context);
  } else if (strcmp(command, "progress") == 0 && argc == 6) {
    result = progress(context, argv[2], argv[3], atof(argv[4]), argv[5]);
  } else if (strcmp(command, "complete") == 0 && argc == 4) {
    result = ap_job_complete(context, argv[2], argv[3], NULL, &error) == AP_OK
                 ? 0
                 : fail("complete", &error);
  } else if (strcmp(command, "attach") == 0 && argc == 3) {
    result = attach(context, argv[2]);
  } else {
    fprintf(stderr, "http_job_driver: unknown command or wrong arguments\n");
  }

  ap_context_close(context);
  ap_config_free(config);
  return result;
}
