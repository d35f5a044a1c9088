{
  "targets": [
    {
      "target_name": "dst_cipher",
      "sources": ["native/cipher.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    },
    {
      "target_name": "dst_flock",
      "sources": ["native/flock.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    },
    {
      "target_name": "dst_fileops",
      "sources": ["native/fileops.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
