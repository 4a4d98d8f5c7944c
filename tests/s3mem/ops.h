/*
 * The S3 operations s3mem implements.  Each takes a request whose bucket
 * (when the operation needs one) exists, and replies exactly once.
 */
#ifndef S3MEM_OPS_H
#define S3MEM_OPS_H

#include "server.h"

/* ops_bucket.c */
int  bucket_name_valid(const char *);
void op_list_buckets(struct s3req *);
void op_create_bucket(struct s3req *);
void op_delete_bucket(struct s3req *);
void op_bucket_location(struct s3req *);

/* ops_list.c: ListObjects (v1) and ListObjectsV2 (list-type=2) */
void op_list_objects(struct s3req *);

/* ops_delete.c: DeleteObjects (POST ?delete) */
void op_delete_objects(struct s3req *);

/* ops_seed.c: POST ?s3mem-seed, see s3mem.c */
void op_seed(struct s3req *);

/* ops_faults.c: GET and POST /?s3mem-faults, see s3mem.c */
void op_faults(struct s3req *);

/* ops_object.c */
/*
 * Content-MD5 against the body, when sent (or required: then missing is
 * an error too).  Replies and returns -1 on failure.
 */
int  check_content_md5(struct s3req *, int required);
void op_put_object(struct s3req *);
/* GetObject, and HeadObject for HEAD */
void op_get_object(struct s3req *);
void op_delete_object(struct s3req *);

#endif
