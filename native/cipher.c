/*
 * dst's in-place cipher: one EVP pass of a frame's payload straight into the caller's buffer.
 *
 * Why: Node 20's cipher.update() cannot write into a given buffer; per call it allocates,
 * re-allocates zero-filled and copies, which costs ~0.8 ms per MiB on top of AES-GCM's ~0.2 ms
 * (bench/README.md). This file does the same EVP calls Node makes, with Node's own OpenSSL (the
 * node binary exports it; the headers come with Node's), writing into the pooled buffer.
 * Everything above the cipher (nonces, AAD, HMAC, framing) stays in src/protocol/suites.ts.
 *
 * crypt(cipher, encrypt, key, iv, aad, input, output, at, tag) -> bytes written, or
 *   -1 (REJECTED) the input does not authenticate: an AEAD tag that does not verify, bad CBC
 *      padding (decrypting, the final step is that check): the peer's or the wire's doing;
 *   -2 (OPENSSL_FAILED) any other EVP step failed: a fault here, never the input's.
 * Misuse (wrong types or lengths) throws.
 *   cipher: 0 aes-256-gcm, 1 chacha20-poly1305, 2 aes-256-cbc, 3 aes-256-ctr
 *   aad, tag: AEAD only (null otherwise); tag is written when encrypting, checked when decrypting
 *
 * mallocTrim() -> boolean: glibc's malloc_trim(0), true when it gave memory back to the kernel.
 * Why here: after a burst of large requests is freed, glibc keeps the pages of its heap (its mmap
 * threshold grows with the blocks it frees, so later large blocks come from the heap too) and an
 * export's RSS stays up; src/engine/heap.ts calls this (for reclaim.ts) after a connection with such a burst
 * closed. It is in this addon only because this is the addon dst builds. Not glibc: absent.
 */
#include <limits.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define TAG_LEN 16
#define REJECTED (-1)
#define OPENSSL_FAILED (-2)

typedef struct {
  EVP_CIPHER_CTX *ctx; /* one per thread (each worker loads its own instance) */
} instance;

static const EVP_CIPHER *cipher_by_id(int id) {
  switch (id) {
    case 0: return EVP_aes_256_gcm();
    case 1: return EVP_chacha20_poly1305();
    case 2: return EVP_aes_256_cbc();
    case 3: return EVP_aes_256_ctr();
    default: return NULL;
  }
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* bytes of a Uint8Array (Buffer) argument; null/undefined give len 0 and data NULL when allowed */
static int bytes_arg(napi_env env, napi_value v, int nullable, unsigned char **data, size_t *len) {
  napi_valuetype t;
  *data = NULL;
  *len = 0;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (t == napi_null || t == napi_undefined) return nullable;
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &off) != napi_ok || type != napi_uint8_array) return 0;
  *data = p;
  return 1;
}

static napi_value crypt(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  instance *inst;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&inst) != napi_ok || argc != 9) return fail(env, "crypt: 9 arguments");
  int32_t id, at;
  bool encrypt;
  if (napi_get_value_int32(env, argv[0], &id) != napi_ok) return fail(env, "crypt: cipher must be a number");
  if (napi_get_value_bool(env, argv[1], &encrypt) != napi_ok) return fail(env, "crypt: encrypt must be a boolean");
  if (napi_get_value_int32(env, argv[7], &at) != napi_ok || at < 0) return fail(env, "crypt: at must be a non-negative number");
  const EVP_CIPHER *c = cipher_by_id(id);
  if (!c) return fail(env, "crypt: unknown cipher");
  int aead = id <= 1;
  unsigned char *key, *iv, *aad, *in, *out, *tag;
  size_t key_len, iv_len, aad_len, in_len, out_len, tag_len;
  if (!bytes_arg(env, argv[2], 0, &key, &key_len) || key_len != (size_t)EVP_CIPHER_key_length(c)) return fail(env, "crypt: key must be a 32-byte Buffer");
  if (!bytes_arg(env, argv[3], 0, &iv, &iv_len) || iv_len != (size_t)EVP_CIPHER_iv_length(c)) return fail(env, "crypt: iv has the wrong length");
  if (!bytes_arg(env, argv[4], !aead, &aad, &aad_len) || aad_len > INT_MAX) return fail(env, "crypt: aad must be a Buffer (AEAD only)");
  if (!bytes_arg(env, argv[5], 0, &in, &in_len) || in_len > INT_MAX - 32) return fail(env, "crypt: input must be a Buffer");
  if (!bytes_arg(env, argv[6], 0, &out, &out_len)) return fail(env, "crypt: output must be a Buffer");
  if (!bytes_arg(env, argv[8], !aead, &tag, &tag_len) || (aead && tag_len != TAG_LEN)) return fail(env, "crypt: tag must be a 16-byte Buffer (AEAD only)");
  /* CBC: encryption pads to the next whole block; OpenSSL asks a block of room to decrypt too */
  size_t room = id != 2 ? in_len : encrypt ? in_len + 16 - in_len % 16 : in_len + 16;
  if ((size_t)at > out_len || out_len - (size_t)at < room) return fail(env, "crypt: output too small");

  EVP_CIPHER_CTX *ctx = inst->ctx;
  int n = 0, fin = 0;
  int ok = EVP_CIPHER_CTX_reset(ctx) == 1 && EVP_CipherInit_ex(ctx, c, NULL, key, iv, encrypt ? 1 : 0) == 1;
  if (ok && aead && aad_len) ok = EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1;
  n = 0;
  if (ok && in_len) ok = EVP_CipherUpdate(ctx, out + at, &n, in, (int)in_len) == 1;
  if (ok && aead && !encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) == 1;
  int rejected = 0;
  if (ok && EVP_CipherFinal_ex(ctx, out + at + n, &fin) != 1) {
    if (encrypt) ok = 0;
    else rejected = 1;
  }
  if (ok && !rejected && aead && encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag) == 1;
  /* a failure leaves OpenSSL's per-thread error queue filled: empty it for Node's next crypto call */
  if (!ok || rejected) ERR_clear_error();
  napi_value result;
  napi_create_int32(env, rejected ? REJECTED : ok ? at + n + fin : OPENSSL_FAILED, &result);
  return result;
}

#ifdef __GLIBC__
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
  return result;
}
#endif

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance *inst = data;
  EVP_CIPHER_CTX_free(inst->ctx);
  free(inst);
}

NAPI_MODULE_INIT() {
  instance *inst = malloc(sizeof *inst);
  if (!inst || !(inst->ctx = EVP_CIPHER_CTX_new())) {
    free(inst);
    napi_throw_error(env, NULL, "dst cipher: out of memory");
    return NULL;
  }
  napi_value fn, version;
#ifdef __GLIBC__
  napi_value trim_fn;
  if (napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, trim, NULL, &trim_fn) != napi_ok ||
      napi_set_named_property(env, exports, "mallocTrim", trim_fn) != napi_ok) {
    return NULL;
  }
#endif
  if (napi_set_instance_data(env, inst, finalize, NULL) != napi_ok ||
      napi_create_function(env, "crypt", NAPI_AUTO_LENGTH, crypt, inst, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "crypt", fn) != napi_ok ||
      napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &version) != napi_ok ||
      napi_set_named_property(env, exports, "openssl", version) != napi_ok) {
    return NULL;
  }
  return exports;
}
