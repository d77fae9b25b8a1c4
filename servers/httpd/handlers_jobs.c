/*
 * GET /v1/jobs/{id}. The event stream of a job is in sse.c.
 */
#include <audiopipe/job.h>
#include <audiopipe/meta.h>

#include "server.h"

enum MHD_Result httpd_handle_job_get(httpd_request_t *request,
                                     struct MHD_Connection *connection) {
  if (!ap_id_is_valid(request->match.id)) {
    return httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                               "job not found");
  }
  ap_job_t *job = NULL;
  ap_error_t error = {0};
  if (ap_job_get(request->server->context, request->owner, request->match.id,
                 &job, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  char *json = NULL;
  ap_status_t status = ap_job_to_json(job, &json, &error);
  ap_job_free(job);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  enum MHD_Result result =
      httpd_respond_json(request, connection, MHD_HTTP_OK, json);
  ap_free(json);
  return result;
}
