{
  "targets": [
    {
      "target_name": "srvlink_native",
      "sources": ["native/src/addon.c", "native/src/reaper.c", "native/src/splice-plane.c", "native/src/splice-binding.c", "native/src/udp-plane.c", "native/src/udp-binding.c", "native/src/dial-plane.c", "native/src/dial-binding.c", "native/src/accept-binding.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2", "-pthread"],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-pthread"]
    }
  ]
}
