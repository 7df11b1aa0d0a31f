#!/bin/sh
# Builds the native addon (build/Release/srvlink_native.node) with node-gyp,
# which npm ships (npm puts it on PATH for package scripts). The addon is
# optional: when it cannot be built, srvlink still runs and says at start that
# orphans will not be reaped, so a failure here warns and does not fail the
# install.
set -u
cd "$(dirname "$0")/.." || exit 0
# Headers of the running node, when installed beside it (Debian/NodeSource
# packages, official tarballs): no download from nodejs.org.
prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
nodedir=""
if [ -f "$prefix/include/node/node_api.h" ]; then nodedir="--nodedir=$prefix"; fi
gyp=${npm_config_node_gyp:-node-gyp}
case "$gyp" in
  *.js) run="node $gyp" ;;
  *) run="$gyp" ;;
esac
if $run rebuild --loglevel=error $nodedir >native/build.log 2>&1; then
  rm -f native/build.log
else
  echo "srvlink: native addon not built (orphaned zombies will not be reaped); see native/build.log" >&2
fi
exit 0
