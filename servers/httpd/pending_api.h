/*
 * Library functions audiopipe-httpd needs that no public header declares
 * yet, reached through the library's internal headers (the server links
 * the static library):
 *
 *   ap_context_object_store   the context's object store, so the server
 *                             streams PUTs and GETs into the same store the
 *                             uploads and workers use;
 *   ap_object_store_presign   a presigned GET, for the 302 response of
 *                             GET /v1/assets/{id}/renditions/{name}.
 *
 * TODO: move these into <audiopipe/context.h> and <audiopipe/storage.h>
 * and link the server to the shared library.
 */
#ifndef HTTPD_PENDING_API_H
#define HTTPD_PENDING_API_H

#include "context/context_internal.h"
#include "storage/object_store.h"

#endif
