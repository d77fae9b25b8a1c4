/*
 * The messages published after a job change has committed: wake-ups for
 * idle workers on "<prefix>:jobs:<kind>" and job events for watches on
 * "<prefix>:job:<id>". A message that is lost delays a consumer by at
 * most its poll interval, because every consumer also reads the records.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "meta/meta_internal.h"
#include "notify/notify_internal.h"

void ap_notify_wakeup_channel(const ap_notifier_t *notifier, const char *kind,
                              char *channel, size_t size) {
  snprintf(channel, size, "%s:jobs:%s", notifier->settings.prefix, kind);
}

void ap_notify_wakeup(ap_notifier_t *notifier, const char *kind,
                      const char *message) {
  if (!notifier || !kind) {
    return;
  }
  char suffix[128];
  snprintf(suffix, sizeof suffix, "jobs:%s", kind);
  ap_notifier_publish(notifier, suffix, message ? message : "");
}

void ap_notify_job_enqueued(ap_notifier_t *notifier, const ap_job_t *job) {
  if (!notifier || !job || job->state != AP_JOB_QUEUED) {
    return;
  }
  /* A delayed job is not claimable yet; the worker's poll finds it when
   * it is due. */
  if (job->due_at_ms > ap_time_now_ms()) {
    return;
  }
  ap_notify_wakeup(notifier, job->kind, job->id);
}

void ap_notify_job_event(ap_notifier_t *notifier, const char *job_id,
                         const char *state, double fraction, const char *stage,
                         int64_t updated_at_ms) {
  if (!notifier || !job_id) {
    return;
  }
  json_object *root = json_object_new_object();
  if (!root) {
    return;
  }
  if (state) {
    json_object_object_add(root, "state", json_object_new_string(state));
  }
  if (fraction >= 0.0) {
    json_object_object_add(root, "fraction", json_object_new_double(fraction));
  }
  if (stage) {
    json_object_object_add(root, "stage", json_object_new_string(stage));
  }
  json_object_object_add(root, "updated_at_ms",
                         json_object_new_int64(updated_at_ms));
  const char *text =
      json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  char suffix[128];
  snprintf(suffix, sizeof suffix, "job:%s", job_id);
  if (text) {
    ap_notifier_publish(notifier, suffix, text);
  }
  json_object_put(root);
}
