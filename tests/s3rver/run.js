#!/usr/bin/env node
// Start s3rver 3.7.1 for clipsweep tests and the demo.
//
//   node run.js --directory DIR [--address 127.0.0.1] [--port 0]
//               [--configure-bucket NAME]... [--ready-file PATH]
//               [--log-level error|warn|info|debug]
//
// Why not the s3rver CLI (which has --address/--port/--directory/--silent/
// --configure-bucket): its log lines are colourised even in a file and its
// request lines are truncated ("-cube 200 11ms"); --port 0 is reported only
// on stdout; and two upstream bugs need patching (see below: a 500 from
// DeleteObjects and keys skipped when paginating). This wrapper logs plain
// text, writes the bound port to --ready-file once the server listens and
// the buckets exist, and shuts down on SIGTERM/SIGINT.
// S3RVER_UNPATCHED=1 restores upstream behaviour (for comparison).
//
// Needs NODE_OPTIONS=--openssl-legacy-provider on Node >= 17: s3rver's
// ListObjectsV2 continuation tokens are DES-encrypted.
//
// Credentials: s3rver knows one key pair, S3RVER / S3RVER. A request signed
// with another access key id gets 403 InvalidAccessKeyId; SigV4 signatures
// are NOT verified (any secret works) and unsigned requests are accepted.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

function usage(msg) {
  if (msg) process.stderr.write(`run.js: ${msg}\n`);
  process.stderr.write(
    'usage: node run.js --directory DIR [--address A] [--port P] ' +
      '[--configure-bucket NAME]... [--ready-file PATH] [--log-level L]\n',
  );
  process.exit(2);
}

const opts = {
  address: '127.0.0.1',
  port: 0,
  directory: null,
  buckets: [],
  readyFile: null,
  logLevel: process.env.S3RVER_LOG_LEVEL || 'info',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  switch (a) {
    case '-d':
    case '--directory':
      opts.directory = val();
      break;
    case '-a':
    case '--address':
      opts.address = val();
      break;
    case '-p':
    case '--port':
      opts.port = Number(val());
      if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
        usage('bad --port');
      break;
    case '--configure-bucket':
      opts.buckets.push(val());
      break;
    case '--ready-file':
      opts.readyFile = val();
      break;
    case '--log-level':
      opts.logLevel = val();
      break;
    case '-h':
    case '--help':
      usage();
      break;
    default:
      usage(`unknown argument ${a}`);
  }
}
if (!opts.directory) usage('--directory is required');
if (!['error', 'warn', 'info', 'debug'].includes(opts.logLevel))
  usage('bad --log-level');

// Fail early and clearly instead of on the first paginated listing.
try {
  crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
} catch (err) {
  process.stderr.write(
    'run.js: DES is unavailable (' +
      err.message +
      '); run with NODE_OPTIONS=--openssl-legacy-provider\n',
  );
  process.exit(1);
}

const S3rver = require('s3rver');
// winston is s3rver's own dependency; resolve it from there.
const winston = require(require.resolve('winston', {
  paths: [path.dirname(require.resolve('s3rver'))],
}));

// Fix a race in s3rver 3.7.1: DeleteObjects deletes its keys concurrently and
// each deletion then rmdir()s its now-empty parent "directories"; when two
// keys share a directory both try and the loser fails with ENOENT, turning
// the whole DeleteObjects request into a 500 InternalError after the objects
// were in fact deleted (clients that retry then see success). Real S3 has no
// such failure, so tolerate it. S3RVER_UNPATCHED=1 keeps upstream behaviour.
if (process.env.S3RVER_UNPATCHED !== '1') {
  const FilesystemStore = require('s3rver/lib/stores/filesystem');
  FilesystemStore.prototype.deleteObject = async function deleteObject(
    bucket,
    key,
  ) {
    await Promise.all(
      ['object', 'object.md5', 'metadata.json'].map(resource =>
        fs.promises
          .unlink(this.getResourcePath(bucket, key, resource))
          .catch(err => {
            if (err.code !== 'ENOENT') throw err;
          }),
      ),
    );
    // remove now-empty parent directories; rmdir() itself checks emptiness
    const bucketPath = this.getBucketPath(bucket);
    const parts = FilesystemStore.encodeKeyPath(key).split('/');
    parts.pop(); // the last part is embedded in the file name
    for (; parts.length; parts.pop()) {
      const dir = path.join(bucketPath, ...parts);
      const rel = path.relative(bucketPath, dir);
      if (rel === '' || rel.startsWith('..')) break; // never the bucket itself
      try {
        await fs.promises.rmdir(dir);
      } catch (err) {
        if (err.code === 'ENOENT') continue; // removed concurrently
        if (err.code === 'ENOTEMPTY' || err.code === 'EEXIST') break;
        throw err;
      }
    }
  };

  // Fix listing order and pagination. s3rver 3.7.1 yields keys in the order
  // of its on-disk directory walk (key "a/b" is directory "a" + file
  // "b._S3rver_object"), e.g. "a/b", "a-b", "a" instead of S3's byte order
  // "a", "a-b", "a/b", and then pages with `key <= startAfter`, so a
  // continuation token or start-after silently skips keys whose walk order
  // differs from byte order. List everything under the prefix, sort by UTF-8
  // bytes as S3 does, then apply start-after and max-keys. As upstream, only
  // objects count towards max-keys (the token names the last object);
  // common prefixes up to that object are on the same page.
  const origList = FilesystemStore.prototype.listObjects;
  const byteCmp = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  FilesystemStore.prototype.listObjects = async function listObjects(
    bucket,
    options,
  ) {
    const { startAfter = '', maxKeys = Infinity } = options;
    const all = await origList.call(this, bucket, {
      ...options,
      startAfter: '',
      maxKeys: Infinity,
    });
    const after = k => !startAfter || byteCmp(k, startAfter) > 0;
    const objects = all.objects
      .filter(o => after(o.key))
      .sort((a, b) => byteCmp(a.key, b.key));
    const isTruncated = objects.length > maxKeys;
    const page = isTruncated ? objects.slice(0, maxKeys) : objects;
    const last = isTruncated ? page[page.length - 1].key : null;
    const commonPrefixes = all.commonPrefixes
      .filter(p => after(p) && (last === null || byteCmp(p, last) < 0))
      .sort(byteCmp);
    return { objects: page, commonPrefixes, isTruncated };
  };
}

fs.mkdirSync(opts.directory, { recursive: true });

const server = new S3rver({
  address: opts.address,
  port: opts.port,
  directory: opts.directory,
  silent: false,
  configureBuckets: opts.buckets.map(name => ({ name, configs: [] })),
});

// Replace s3rver's colourised console transport with a plain one.
const { format } = winston;
server.logger.clear();
server.logger.add(
  new winston.transports.Console({
    level: opts.logLevel,
    format: format.combine(
      format.splat(),
      format.timestamp(),
      format.printf(
        info => `${info.timestamp} ${info.level}: ${info.message}`,
      ),
    ),
  }),
);

// s3rver's first middleware is koa-logger feeding a mangled line to winston;
// swap it for a plain request logger (Koa composes middleware at listen()).
server.middleware[0] = async function requestLog(ctx, next) {
  const start = Date.now();
  try {
    await next();
    server.logger.info(
      '%s %s -> %d (%dms)',
      ctx.method,
      ctx.originalUrl,
      ctx.status,
      Date.now() - start,
    );
  } catch (err) {
    server.logger.info(
      '%s %s -> %d %s (%dms)',
      ctx.method,
      ctx.originalUrl,
      err.status || 500,
      err.code || err.message,
      Date.now() - start,
    );
    throw err;
  }
};

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  server.logger.info('received %s, shutting down', signal);
  const force = setTimeout(() => process.exit(0), 2000);
  force.unref();
  server.close(() => process.exit(0));
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

server
  .run()
  .then(({ address, port }) => {
    server.logger.info(
      'S3rver %s listening on %s:%d (buckets: %s)',
      require('s3rver/package.json').version,
      address,
      port,
      opts.buckets.join(',') || '-',
    );
    if (opts.readyFile) {
      const tmp = `${opts.readyFile}.tmp${process.pid}`;
      fs.writeFileSync(tmp, `${port}\n`);
      fs.renameSync(tmp, opts.readyFile);
    }
  })
  .catch(err => {
    process.stderr.write(`run.js: s3rver failed to start: ${err.stack}\n`);
    process.exit(1);
  });
