{
  "targets": [
    {
      "target_name": "srvlink_native",
      "sources": ["native/src/addon.c", "native/src/reaper.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
