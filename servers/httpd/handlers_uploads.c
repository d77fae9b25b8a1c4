/*
 * POST /v1/uploads (issue a presigned PUT) and
 * POST /v1/uploads/{id}/complete (validate what arrived, create the asset).
 */
#include <stdlib.h>
#include <string.h>

#include <audiopipe/meta.h>
#include <audiopipe/upload.h>

#include "server.h"

enum MHD_Result httpd_handle_upload_create(httpd_request_t *request,
                                           struct MHD_Connection *connection) {
  httpd_upload_body_t body;
  ap_error_t error = {0};
  if (httpd_upload_body_parse(request->body ? request->body : "",
                              request->body_length, &body, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }

  ap_upload_request_t upload;
  ap_upload_request_init(&upload);
  upload.owner = request->owner;
  upload.filename = body.filename;
  upload.size_bytes = body.size_bytes;
  upload.content_type = body.content_type;

  ap_upload_ticket_t *ticket = NULL;
  if (ap_upload_create(request->server->context, &upload, &ticket, &error) !=
      AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  char *json = NULL;
  ap_status_t status = ap_upload_ticket_to_json(ticket, &json, &error);
  ap_upload_ticket_free(ticket);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  enum MHD_Result result =
      httpd_respond_json(request, connection, MHD_HTTP_CREATED, json);
  ap_free(json);
  return result;
}

enum MHD_Result
httpd_handle_upload_complete(httpd_request_t *request,
                             struct MHD_Connection *connection) {
  ap_error_t error = {0};
  if (httpd_complete_body_parse(request->body ? request->body : "",
                                request->body_length, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  if (!ap_id_is_valid(request->match.id)) {
    return httpd_respond_error(request, connection, 0, AP_ERR_NOT_FOUND,
                               "upload not found");
  }

  ap_asset_t *asset = NULL;
  if (ap_upload_complete(request->server->context, request->owner,
                         request->match.id, &asset, &error) != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  char *json = NULL;
  ap_status_t status = ap_asset_to_json(asset, &json, &error);
  ap_asset_free(asset);
  if (status != AP_OK) {
    return httpd_respond_ap_error(request, connection, &error);
  }
  enum MHD_Result result =
      httpd_respond_json(request, connection, MHD_HTTP_OK, json);
  ap_free(json);
  return result;
}
