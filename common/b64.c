#include <openssl/evp.h>

#include "b64.h"
#include "util.h"

char *
b64_encode(const void *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}
