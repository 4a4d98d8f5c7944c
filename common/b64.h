#ifndef CLIPSWEEP_B64_H
#define CLIPSWEEP_B64_H

#include <stddef.h>

/* Standard base64 with padding; returns a malloc'd string the caller frees. */
char *b64_encode(const void *, size_t);

#endif
