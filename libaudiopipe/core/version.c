/* Library-wide trivia: the version string and memory release. */
#include <stdlib.h>

#include <audiopipe/common.h>
#include <audiopipe/version.h>

const char *ap_version_string(void) { return AP_VERSION_STRING; }

void ap_free(void *pointer) { free(pointer); }
