/*
 * dst's thin-provisioning file operations (issue 16): what node:fs lacks to free space and find it.
 *
 * Why: TRIM that frees space, WRITE_ZEROES that writes no zeroes and extents queries need
 * fallocate(2), lseek(2) SEEK_DATA/SEEK_HOLE and the BLKDISCARD/BLKZEROOUT ioctls; Node 20 has
 * none of them. src/engine/io/file-ops.ts loads this and falls back (hint dropped, zeroes
 * written, all data) when it is missing or a call is not supported where it lands.
 *
 * punchHole(fd, offset, length)  fallocate(PUNCH_HOLE | KEEP_SIZE)   -> Promise<void>
 * zeroRange(fd, offset, length)  fallocate(ZERO_RANGE | KEEP_SIZE)   -> Promise<void>
 * discard(fd, offset, length)    ioctl(BLKDISCARD)                   -> Promise<void>
 * zeroOut(fd, offset, length)    ioctl(BLKZEROOUT)                   -> Promise<void>
 *   These may block for long (a large range, a device's discard), so they run on the libuv pool
 *   (napi async work); a failure rejects with an Error whose code is the errno's name
 *   (EOPNOTSUPP comes back as "ENOTSUP": the same number on Linux), syscall set.
 * seekData(fd, offset) / seekHole(fd, offset) -> the offset found, or -1 when there is none
 *   (ENXIO: offset at or past the end, or no data after it). Synchronous: an extent lookup, not
 *   I/O. Any other failure throws the same kind of Error.
 * Misuse (not a fd, a negative offset or length) throws a TypeError.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <node_api.h>
#include <uv.h>

typedef enum { PUNCH_HOLE, ZERO_RANGE, DISCARD, ZERO_OUT } op_kind;

static const char *const SYSCALL[] = { "fallocate", "fallocate", "ioctl BLKDISCARD", "ioctl BLKZEROOUT" };

typedef struct {
  op_kind kind;
  int fd;
  int64_t offset, length;
  int err; /* errno of the call, 0 when it succeeded */
  napi_deferred deferred;
  napi_async_work work;
} call;

/* An Error like Node's system errors: message "CODE: strerror (syscall)", code, syscall. */
static napi_value sys_error(napi_env env, int err, const char *syscall) {
  char name[64], message[256];
  uv_err_name_r(-err, name, sizeof name);
  if (name[0] != 'E') snprintf(name, sizeof name, "E%d", err); /* libuv has no name: as errnoName() in errors.ts */
  snprintf(message, sizeof message, "%s: %s (%s)", name, strerror(err), syscall);
  napi_value code, msg, error, sc;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  return error;
}

static void execute(napi_env env, void *data) {
  (void)env;
  call *c = data;
  uint64_t range[2] = { (uint64_t)c->offset, (uint64_t)c->length };
  int rc;
  do {
    switch (c->kind) {
      case PUNCH_HOLE: rc = fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, c->offset, c->length); break;
      case ZERO_RANGE: rc = fallocate(c->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, c->offset, c->length); break;
      case DISCARD: rc = ioctl(c->fd, BLKDISCARD, range); break;
      default: rc = ioctl(c->fd, BLKZEROOUT, range); break;
    }
  } while (rc != 0 && errno == EINTR);
  c->err = rc == 0 ? 0 : errno;
}

static void complete(napi_env env, napi_status status, void *data) {
  call *c = data;
  if (status != napi_ok) c->err = ECANCELED;
  if (c->err == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, c->deferred, undefined);
  } else {
    napi_reject_deferred(env, c->deferred, sys_error(env, c->err, SYSCALL[c->kind]));
  }
  napi_delete_async_work(env, c->work);
  free(c);
}

/* (fd, offset[, length]) from the arguments; 0 after throwing a TypeError */
static int args(napi_env env, napi_callback_info info, size_t want, const char *what, int32_t *fd, int64_t *offset, int64_t *length) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0 ||
      napi_get_value_int64(env, argv[1], offset) != napi_ok || *offset < 0 ||
      (want == 3 && (napi_get_value_int64(env, argv[2], length) != napi_ok || *length < 0))) {
    napi_throw_type_error(env, NULL, what);
    return 0;
  }
  return 1;
}

static napi_value start(napi_env env, napi_callback_info info, op_kind kind, const char *what) {
  int32_t fd;
  int64_t offset, length;
  if (!args(env, info, 3, what, &fd, &offset, &length)) return NULL;
  call *c = calloc(1, sizeof *c);
  if (!c) {
    napi_throw_error(env, NULL, "dst fileops: out of memory");
    return NULL;
  }
  c->kind = kind;
  c->fd = fd;
  c->offset = offset;
  c->length = length;
  napi_value promise, name;
  if (napi_create_promise(env, &c->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, SYSCALL[kind], NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, c, &c->work) != napi_ok ||
      napi_queue_async_work(env, c->work) != napi_ok) {
    free(c);
    napi_throw_error(env, NULL, "dst fileops: cannot queue the call");
    return NULL;
  }
  return promise;
}

static napi_value punch_hole(napi_env env, napi_callback_info info) {
  return start(env, info, PUNCH_HOLE, "dst fileops: punchHole(fd, offset, length)");
}
static napi_value zero_range(napi_env env, napi_callback_info info) {
  return start(env, info, ZERO_RANGE, "dst fileops: zeroRange(fd, offset, length)");
}
static napi_value discard(napi_env env, napi_callback_info info) {
  return start(env, info, DISCARD, "dst fileops: discard(fd, offset, length)");
}
static napi_value zero_out(napi_env env, napi_callback_info info) {
  return start(env, info, ZERO_OUT, "dst fileops: zeroOut(fd, offset, length)");
}

static napi_value seek(napi_env env, napi_callback_info info, int whence, const char *what) {
  int32_t fd;
  int64_t offset;
  if (!args(env, info, 2, what, &fd, &offset, NULL)) return NULL;
  off_t at = lseek(fd, offset, whence);
  int err = at < 0 ? errno : 0;
  if (err != 0 && err != ENXIO) {
    napi_throw(env, sys_error(env, err, whence == SEEK_DATA ? "lseek SEEK_DATA" : "lseek SEEK_HOLE"));
    return NULL;
  }
  napi_value result;
  napi_create_int64(env, at < 0 ? -1 : (int64_t)at, &result);
  return result;
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_DATA, "dst fileops: seekData(fd, offset)");
}
static napi_value seek_hole(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_HOLE, "dst fileops: seekHole(fd, offset)");
}

NAPI_MODULE_INIT() {
  static const struct { const char *name; napi_callback fn; } FNS[] = {
    { "punchHole", punch_hole }, { "zeroRange", zero_range }, { "discard", discard },
    { "zeroOut", zero_out }, { "seekData", seek_data }, { "seekHole", seek_hole },
  };
  for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, FNS[i].name, NAPI_AUTO_LENGTH, FNS[i].fn, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, FNS[i].name, fn) != napi_ok) {
      return NULL;
    }
  }
  return exports;
}
