/*
 * dst's disk lock: flock(2) for Node 20, which has none in node:fs.
 *
 * Why: one disk, one export, across processes too. An export holds flock(LOCK_EX | LOCK_NB) on
 * its serving descriptor while it serves; a second engine on the same file (any path, symlink or
 * hard link: the lock is on the inode) is refused at start. The kernel drops the lock when the
 * descriptor is closed or the process dies, so nothing stale is ever left behind.
 *
 * lockExclusive(fd) -> 0 when locked, else the errno (EWOULDBLOCK: another open file holds it).
 * Never blocks. Misuse (not an integer fd) throws.
 */
#include <errno.h>
#include <sys/file.h>
#include <node_api.h>

static napi_value lock_exclusive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "dst flock: lockExclusive(fd) needs a file descriptor");
    return NULL;
  }
  int rc;
  do rc = flock(fd, LOCK_EX | LOCK_NB); while (rc != 0 && errno == EINTR);
  napi_value result;
  napi_create_int32(env, rc == 0 ? 0 : errno, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn, wouldblock;
  if (napi_create_function(env, "lockExclusive", NAPI_AUTO_LENGTH, lock_exclusive, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "lockExclusive", fn) != napi_ok ||
      napi_create_int32(env, EWOULDBLOCK, &wouldblock) != napi_ok ||
      napi_set_named_property(env, exports, "EWOULDBLOCK", wouldblock) != napi_ok) {
    return NULL;
  }
  return exports;
}
