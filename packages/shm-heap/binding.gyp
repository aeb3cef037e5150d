{
  "targets": [
    {
      "target_name": "shm_heap",
      "sources": ["native/shm_heap.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lrt", "-lpthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
