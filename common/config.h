#ifndef CLIPSWEEP_CONFIG_H
#define CLIPSWEEP_CONFIG_H

#include "util.h"

/*
 * Configuration comes from the environment (12-factor).  Every string here
 * is owned by its struct and released by the matching _free().  Fields named
 * "redacted" are safe to log: they never hold a password or a key.
 */

struct redis_url {
	char *host;
	int   port;
	int   tls;
	int   verify;  /* 0 with ?ssl_cert_reqs=none */
	char *ca_file; /* ?ssl_ca_certs=PATH, else system default */
	char *user;
	char *password;
	int   db;
	char *redacted;
};

struct storage_url {
	char *scheme;	   /* http or https */
	char *host;	   /* host name or address, no port */
	int   port;	   /* 0 when the scheme's default */
	char *host_header; /* host[:port] as sent */
	char *bucket;
	char *prefix; /* the cube prefix, always ending in '/' */
	char *volume; /* file://: the directory; NULL for S3 */
	int   virtual_hosted;
	char *region;
	char *redacted;
};

struct config {
	struct redis_url   redis;
	char		  *database_url;
	char		  *database_redacted;
	struct storage_url storage;
	char		  *access_key_id;
	char		  *secret_access_key;
	char		  *session_token;
	char *namespace;
	char  *worker_id;
	char  *jobs_table;	  /* quoted identifier */
	char  *clips_table;	  /* quoted identifier */
	int    audit;		  /* CLIPSWEEP_AUDIT=postgres */
	char  *audit_table;	  /* quoted identifier */
	double max_delete_ratio;  /* sweep guard, 0 to 1 */
	double s3_max_rps;	  /* request-rate cap, 0 for none */
	int    max_attempts;	  /* runs of a task that fails transiently */
	int    not_ready_retry_s; /* how long job_not_found... is retried */
	int    retry_base_ms;	  /* backoff: full jitter on base * 2^n */
	int    lease_s;		  /* a claimed task's lease, renewed */
	int    s3_max_attempts;	  /* sends of one storage request */
};

/* What config_load() must find; the CLI needs only Redis. */
#define CONFIG_NEED_REDIS    0x01
#define CONFIG_NEED_DATABASE 0x02
#define CONFIG_NEED_STORAGE  0x04

int redis_url_parse(
    const char *, struct redis_url *, char *, size_t) MUST_CHECK;
void redis_url_free(struct redis_url *);

int storage_url_parse(const char *, const char *region, struct storage_url *,
    char *, size_t) MUST_CHECK;
/* CLIPSWEEP_STORAGE_URL=file:///dir: the volume dir, its name the prefix. */
int volume_url_parse(
    const char *, struct storage_url *, char *, size_t) MUST_CHECK;
void storage_url_free(struct storage_url *);

/* Quote "name" or "schema.name" as a safe SQL identifier; NULL if invalid. */
char *sql_quote_relation(const char *);

/* URL with any password replaced by "***", for logs; caller frees. */
char *url_redact(const char *);
/* A libpq URL or key=value string without its secrets; caller frees. */
char *conninfo_redact(const char *);

/* Region of a known Cloudcube bucket, or NULL. */
const char *cloudcube_region(const char *bucket);

/*
 * A key segment check shared by everything that builds storage keys:
 * refuses empty, "." and ".." segments, control characters and NUL.
 * Returns NULL when the key is acceptable, else the reason.
 */
const char *key_unsafe_reason(const char *key, size_t len);

int  config_load(struct config *, int need, char *, size_t) MUST_CHECK;
void config_free(struct config *);

#endif
