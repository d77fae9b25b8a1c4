/*
 * Errors: every function that can fail returns an ap_status_t and, when the
 * caller passes one, fills an ap_error_t with the domain, the code and a
 * message that names the value at fault and what to do about it.
 *
 * The numeric values of ap_error_code_t and ap_error_domain_t are part of
 * the ABI: they never change meaning, and new codes are only appended.
 */
#ifndef AUDIOPIPE_ERROR_H
#define AUDIOPIPE_ERROR_H

#include <audiopipe/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The part of the library that raised the error. */
typedef enum ap_error_domain {
  AP_DOMAIN_NONE = 0,
  AP_DOMAIN_CORE = 1,     /* arguments, memory, configuration */
  AP_DOMAIN_IO = 2,       /* reading input, writing output */
  AP_DOMAIN_MEDIA = 3,    /* probing, decoding, analysis, encoding */
  AP_DOMAIN_UPLOAD = 4,   /* upload creation and validation */
  AP_DOMAIN_META = 5,     /* metadata store */
  AP_DOMAIN_STORAGE = 6,  /* object store */
  AP_DOMAIN_QUEUE = 7,    /* job queue and leases */
  AP_DOMAIN_HTTP = 8      /* HTTP servers and clients */
} ap_error_domain_t;

/* Stable error codes. The comment gives the usual cause. */
typedef enum ap_error_code {
  /* General (1-99). */
  AP_ERR_INVALID_ARGUMENT = 1,   /* a parameter or option is out of range */
  AP_ERR_NO_MEMORY = 2,          /* an allocation failed */
  AP_ERR_IO = 3,                 /* a read, write or seek failed */
  AP_ERR_NOT_FOUND = 4,          /* file, object or record does not exist */
  AP_ERR_CANCELLED = 5,          /* the progress callback asked to stop */
  AP_ERR_UNSUPPORTED = 6,        /* valid request this build cannot serve */
  AP_ERR_INVALID_CONFIG = 7,     /* unknown configuration key or bad value */
  AP_ERR_INTERNAL = 8,           /* a bug: please report it */
  AP_ERR_CONFLICT = 9,           /* state changed underneath the caller */
  AP_ERR_UNAVAILABLE = 10,       /* a backend is unreachable: retry later */
  AP_ERR_TIMED_OUT = 11,         /* an operation exceeded its deadline */
  AP_ERR_PERMISSION = 12,        /* credentials or signature rejected */

  /* Media input (100-199): the file is empty, not audio, or hostile. */
  AP_ERR_EMPTY_INPUT = 100,          /* zero bytes */
  AP_ERR_NOT_AUDIO = 101,            /* no audio stream can be found */
  AP_ERR_MULTIPART_BODY = 102,       /* an HTTP form envelope, not audio */
  AP_ERR_UNSUPPORTED_CODEC = 103,    /* audio, but no decoder for it */
  AP_ERR_CHANNELS_UNSUPPORTED = 104, /* channel count zero or over limit */
  AP_ERR_SAMPLE_RATE_UNSUPPORTED = 105, /* sample rate zero or over limit */
  AP_ERR_INPUT_TOO_LARGE = 106,      /* input bytes over the size limit */
  AP_ERR_DURATION_LIMIT = 107,       /* audio longer than the limit */
  AP_ERR_DECODE_TIME_LIMIT = 108,    /* decoding took longer than allowed */
  AP_ERR_SAMPLE_BUDGET = 109,        /* decoded samples over the budget */
  AP_ERR_CORRUPT_INPUT = 110,        /* the decoder found no valid audio */
  AP_ERR_ENCODE = 111,               /* an encoder failed */
  AP_ERR_FORMAT_MISMATCH = 112,      /* content contradicts declared type */

  /* Uploads (200-299). */
  AP_ERR_UPLOAD_TOO_LARGE = 200,     /* declared or stored size over limit */
  AP_ERR_SIZE_MISMATCH = 201,        /* stored size differs from declared */
  AP_ERR_CONTENT_TYPE = 202,         /* content type not on the allowlist */
  AP_ERR_INVALID_FILENAME = 203,     /* filename empty, too long or unsafe */
  AP_ERR_EXPIRED = 204,              /* upload or signed URL has expired */
  AP_ERR_SIGNATURE = 205,            /* signed URL tampered or mismatched */
  AP_ERR_INFECTED = 206,             /* virus scanner matched a signature */
  AP_ERR_UPLOAD_STATE = 207,         /* upload already completed or gone */
  AP_ERR_OBJECT_MISSING = 208,       /* nothing was uploaded to the URL */

  /* Jobs (300-399). */
  AP_ERR_LEASE_LOST = 300,           /* caller no longer holds the lease */
  AP_ERR_JOB_STATE = 301,            /* transition not allowed from state */
  AP_ERR_RATE_LIMITED = 302          /* too many requests: retry later */
} ap_error_code_t;

#define AP_ERROR_MESSAGE_SIZE 512

/*
 * An error description. Zero-initialise it (or call ap_error_clear) before
 * use; the library writes it only when a call fails, so one ap_error_t can
 * be passed to a sequence of calls and read after the first failure.
 */
typedef struct ap_error {
  uint32_t domain; /* ap_error_domain_t */
  uint32_t code;   /* ap_error_code_t */
  char message[AP_ERROR_MESSAGE_SIZE]; /* UTF-8, NUL-terminated */
} ap_error_t;

/* Resets an error to "no error". */
AP_EXPORT void ap_error_clear(ap_error_t *error);

/*
 * Returns the stable snake_case name of a code ("not_audio",
 * "empty_input"), as used in JSON error bodies; "unknown" for a value the
 * library does not define. The string is static.
 */
AP_EXPORT const char *ap_error_code_name(int code);

/* Returns a one-line English description of a code. Static string. */
AP_EXPORT const char *ap_error_code_description(int code);

/* Returns the snake_case name of a domain ("media", "queue"). Static. */
AP_EXPORT const char *ap_error_domain_name(int domain);

/*
 * Tells whether an operation that failed with `code` may succeed if the
 * caller retries it unchanged later (a backend outage, a timeout), as
 * opposed to failing again for the same input. Returns 1 or 0.
 */
AP_EXPORT int ap_error_is_retryable(int code);

/*
 * Error hook: called once for every error the library reports through an
 * ap_error_t that is not a plain validation failure of caller input, so a
 * host application can forward it to Sentry or a log. The hook may run on
 * any library thread, concurrently with itself, and must not call back
 * into the library. Pass NULL to remove it. Thread-safe.
 */
typedef void (*ap_error_hook_fn)(void *user_data, const ap_error_t *error);
AP_EXPORT void ap_set_error_hook(ap_error_hook_fn hook, void *user_data);

#ifdef __cplusplus
}
#endif

#endif
