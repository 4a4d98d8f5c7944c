/*
 * Shared by the libFuzzer targets: the entry point's prototype and the
 * check that turns a broken invariant into a crash libFuzzer records.
 */
#ifndef CLIPSWEEP_FUZZ_H
#define CLIPSWEEP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Abort, naming the invariant, when cond is false. */
#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant broken: %s\n",       \
			    __FILE__, __LINE__, #cond);                        \
			abort();                                               \
		}                                                              \
	} while (0)

/*
 * Findings, numbered as in README.md.  A finding reported but not fixed
 * yet may be tolerated (FUZZ_TOLERATE(n) 1 for its n) so that fuzzing
 * finds other things; findings 1 to 3 are fixed, so nothing is tolerated.
 */
#define FUZZ_TOLERATE(n) 0

#endif
