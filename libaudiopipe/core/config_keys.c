/*
 * Every configuration key the library accepts, with its type, default and
 * unit. docs/operations.md is generated from the same facts by
 * `audiopipe config --markdown`, so keep descriptions to one sentence.
 */
#include <string.h>

#include "core/config_keys.h"

static const ap_config_key_info_t key_table[] = {
    /* Media limits (see <audiopipe/limits.h>). */
    {"limits.max_input_bytes", "size", "2G", "bytes",
     "Largest input the engine reads; larger inputs fail with input_too_large."},
    {"limits.max_duration", "duration", "6h", "ms",
     "Longest audio accepted; longer inputs fail with duration_limit."},
    {"limits.max_channels", "integer", "32", "channels",
     "Most channels accepted (1 to 255); more fail with unsupported_channel_count."},
    {"limits.max_sample_rate", "integer", "384000", "Hz",
     "Highest sample rate accepted; higher fail with unsupported_sample_rate."},
    {"limits.max_decode_time", "duration", "30m", "ms",
     "Wall-clock budget for decoding one input; past it, decode_time_limit."},
    {"limits.max_decoded_samples", "integer", "16588800000", "samples",
     "Budget of decoded samples (frames times channels) for one input."},

    /* Context: backends, secrets and addresses (see <audiopipe/context.h>). */
    {"metadata.uri", "string", "sqlite://./audiopipe-data/meta.db", "",
     "Metadata store: sqlite://PATH, a SQLite file (created if missing), or mongodb://HOSTS/DATABASE?replicaSet=NAME, a MongoDB replica set."},
    {"metadata.sqlite_synchronous", "string", "NORMAL", "",
     "SQLite synchronous mode, FULL (survives power loss) or NORMAL (survives process crashes)."},
    {"metadata.pool_size", "integer", "4", "connections",
     "SQLite connections the context keeps open for concurrent calls (1 to 64); a MongoDB URI sets maxPoolSize instead."},
    {"metadata.busy_timeout", "duration", "5s", "ms",
     "How long a SQLite call waits for another writer's lock before failing with unavailable."},
    {"metadata.auto_migrate", "bool", "true", "",
     "Apply missing schema migrations when a context opens."},
    {"objects.uri", "string", "file://./audiopipe-data/objects", "",
     "Object store: file://PATH, a local directory whose signed URLs audiopipe-httpd serves, or s3://BUCKET?endpoint=URL."},
    /* The S3 object store (objects.uri = s3://BUCKET?..., see docs/s3.md). */
    {"objects.s3_access_key_id", "string", NULL, "",
     "S3 access key id; unset reads AWS_ACCESS_KEY_ID."},
    {"objects.s3_secret_access_key", "string", NULL, "",
     "S3 secret access key; unset reads AWS_SECRET_ACCESS_KEY; never logged."},
    {"objects.s3_session_token", "string", NULL, "",
     "S3 session token of temporary credentials; unset reads AWS_SESSION_TOKEN."},
    {"objects.s3_part_size", "size", "8M", "bytes",
     "Part size of multipart uploads (5M to 5G); smaller objects go in one PUT."},
    {"objects.s3_timeout", "duration", "60s", "ms",
     "Timeout of each S3 request, transfer included."},
    {"queue.uri", "string", "db", "",
     "Job queue: db keeps jobs as rows of the metadata store."},
    {"signing.secret", "string", NULL, "",
     "Secret of at least 32 bytes that signs presigned URLs and list cursors; never logged."},
    {"public.base_url", "string", NULL, "",
     "URL clients reach the server on, such as https://media.example.com; presigned URLs use it."},
    /* Uploads (see <audiopipe/upload.h>). */
    {"uploads.max_bytes", "size", "2G", "bytes",
     "Largest upload accepted; larger ones fail with upload_too_large."},
    {"uploads.allowed_content_types", "string",
     "audio/mpeg,audio/mp4,audio/x-m4a,audio/aac,audio/ogg,audio/opus,"
     "audio/webm,audio/wav,audio/x-wav,audio/wave,audio/flac,audio/x-flac,"
     "audio/aiff",
     "", "Comma-separated content types an upload may declare."},
    {"uploads.url_ttl", "duration", "15m", "ms",
     "Lifetime of a presigned upload URL (at most 7 days)."},
    {"uploads.multipart_threshold", "size", "64M", "bytes",
     "Largest upload sent by put or post; larger ones must use multipart (at most 5G, the S3 limit of one PUT)."},
    {"uploads.part_size", "size", "8M", "bytes",
     "Part size of multipart uploads (at least 5M), raised when a file would need more than 10000 parts."},
    {"uploads.clamd_address", "string", NULL, "",
     "clamd to scan uploads with, unix:PATH or tcp:HOST:PORT; unset skips scanning."},
    {"uploads.clamd_timeout", "duration", "30s", "ms",
     "Timeout of each connect, send and receive to clamd."},
    /* Jobs (see <audiopipe/job.h>). */
    {"jobs.retry_base", "duration", "5s", "ms",
     "Base of the exponential retry backoff (full jitter)."},
    {"jobs.retry_max", "duration", "10m", "ms",
     "Cap of the retry backoff."},
    {"jobs.watch_interval", "duration", "200ms", "ms",
     "How often a job watch polls the job row with the db queue."},
    /* Redis notifications and shared rate limits (see <audiopipe/redis.h>). */
    {"redis.uri", "string", "", "",
     "Redis for worker wake-ups, job events and shared rate limits: redis://[user:password@]host:port[/db] or unix:///path; empty runs without Redis."},
    {"redis.key_prefix", "string", "audiopipe", "",
     "Prefix of every Redis channel and key, so several deployments can share one Redis."},
    {"redis.connect_timeout", "duration", "500ms", "ms",
     "Timeout of each connect to Redis, AUTH and SELECT included."},
    {"redis.command_timeout", "duration", "250ms", "ms",
     "Timeout of each Redis command; a slower Redis counts as unreachable."},
    {"redis.reconnect_min", "duration", "50ms", "ms",
     "Base of the exponential backoff (full jitter) between Redis reconnects."},
    {"redis.reconnect_max", "duration", "5s", "ms",
     "Cap of the backoff between Redis reconnects."},
    /* The worker (see <audiopipe/worker.h>, servers/worker). */
    {"processing.profile", "string",
     "waveform=dat:16:256,waveform=json:8:pps20,rendition=opus:64k,rendition=mp3:128k",
     "", "Waveforms and renditions each asset gets, as comma-separated waveform= and rendition= items."},
    {"worker.concurrency", "integer", "1", "jobs",
     "Jobs audiopipe-worker processes at once (1 to 256)."},
    {"worker.lease", "duration", "60s", "ms",
     "Lease a worker takes on each job; heartbeats renew it every quarter."},
    {"worker.drain_timeout", "duration", "30s", "ms",
     "How long SIGTERM lets running jobs finish before they are re-queued."},
    {"worker.metrics_listen", "string", NULL, "",
     "Address and port of audiopipe-worker's /metrics (IPv4 HOST:PORT); unset serves none."},
    /* Logging and the HTTP server (see <audiopipe/log.h>, servers/httpd). */
    {"log.level", "string", "info", "",
     "Lowest level written: debug, info, warn or error."},
    {"log.rate_limit_burst", "integer", "20", "lines",
     "Warning and error lines of one event written per interval before repeats are counted instead (0 disables)."},
    {"log.rate_limit_interval", "duration", "1s", "ms",
     "Window of the per-event log repeat limit."},
    {"http.listen", "string", "127.0.0.1:8080", "",
     "Address and port audiopipe-httpd listens on (IPv4 HOST:PORT)."},
    {"http.threads", "integer", "0", "threads",
     "Worker threads of audiopipe-httpd; 0 picks twice the number of CPUs."},
    {"http.api_keys_file", "string", NULL, "",
     "File of lines \"owner sha256hex\" mapping API key hashes to owners."},
    {"http.cors_origins", "string", "", "",
     "Comma-separated origins allowed by CORS, such as https://app.example.com."},
    {"http.max_body_bytes", "size", "64K", "bytes",
     "Largest JSON request body; larger ones get 413."},
    {"http.max_connections", "integer", "4096", "connections",
     "Most connections audiopipe-httpd holds open at once."},
    {"http.connection_timeout", "duration", "30s", "ms",
     "Idle time after which a connection is closed, against slow clients."},
    {"http.rate_limit", "integer", "100", "requests/s",
     "Sustained requests per second allowed for one API key (0 disables)."},
    {"http.rate_limit_burst", "integer", "200", "requests",
     "Requests one API key may send at once above the sustained rate."},
    {"http.drain_timeout", "duration", "30s", "ms",
     "How long SIGTERM waits for in-flight requests before exiting."},
    {"http.drain_grace", "duration", "0s", "ms",
     "After SIGTERM, how long /healthz answers 503 before new connections are refused."},
    {"http.sse_heartbeat", "duration", "15s", "ms",
     "Interval of the comment line sent on idle server-sent event streams."},
    {"http.sse_max_streams", "integer", "2000", "streams",
     "Most server-sent event streams open at once; more get 503."},
};

size_t ap_config_key_count(void) {
  return sizeof key_table / sizeof key_table[0];
}

const ap_config_key_info_t *ap_config_key_at(size_t index) {
  if (index >= ap_config_key_count()) {
    return NULL;
  }
  return &key_table[index];
}

const ap_config_key_info_t *ap_config_key_find(const char *key) {
  for (size_t i = 0; i < ap_config_key_count(); i++) {
    if (strcmp(key_table[i].key, key) == 0) {
      return &key_table[i];
    }
  }
  return NULL;
}
