{
  "targets": [
    {
      "target_name": "dst_cipher",
      "sources": ["native/cipher.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
