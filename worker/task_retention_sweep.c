#include <cjson/cJSON.h>

#include "clipsweep_config.h"
#include "worker.h"

/*
 * Bulk retention sweeps are the next milestone.  Until they land the worker
 * answers them honestly rather than leaving them queued forever.
 */
static void
retention_sweep_run(struct task_run *tr)
{
	task_run_error(tr, NULL, "unsupported",
	    "retention_sweep is not "
	    "supported by this worker version (%s); nothing was deleted",
	    CLIPSWEEP_VERSION);
	task_run_finish(tr, "failed");
}

const struct task_kind task_kind_retention_sweep = {
    .name = "retention_sweep",
    .type = TASK_RETENTION_SWEEP,
    .run = retention_sweep_run,
};
