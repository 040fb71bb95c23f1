{
  "variables": {
    # FLASHCHECK_NATIVE_TUNE=1 npm ci (or node-gyp rebuild) adds -march=native/-mcpu=native.
    "flashcheck_native_tune%": "<!(node -p \"process.env.FLASHCHECK_NATIVE_TUNE === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "flashcheck_kernel",
      "sources": ["src/addon.cc", "src/model.cc", "src/config.cc", "src/weights.cc", "src/state.cc", "src/forward.cc", "src/kernels.cc", "src/quant.cc", "src/qkernels.cc", "src/safetensors.cc", "src/sdnotify.cc", "src/sched.cc", "src/append_map.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-O2", "-fno-exceptions"],
      "cflags_cc!": ["-O2", "-fno-exceptions", "-std=gnu++14"],
      "cflags": ["-O3", "-ffp-contract=fast"],
      "cflags_cc": ["-std=gnu++17", "-O3", "-ffp-contract=fast", "-fexceptions"],
      "conditions": [
        ["flashcheck_native_tune==1 and target_arch=='arm64'", {
          "cflags": ["-mcpu=native"], "cflags_cc": ["-mcpu=native"]
        }],
        ["flashcheck_native_tune==1 and target_arch!='arm64'", {
          "cflags": ["-march=native"], "cflags_cc": ["-march=native"]
        }]
      ]
    }
  ]
}
