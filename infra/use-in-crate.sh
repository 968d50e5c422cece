#!/usr/bin/env sh
# Points a copy of hookline's infra/template.yaml at a crate of your own: every function is built
# from the crate root (CodeUri ..) as your one binary, which runs the function HOOKLINE_FUNCTION
# names (hookline_server::main does). Run from your crate's root after `cp -r <hookline>/infra .`:
#   infra/use-in-crate.sh <your binary name> [template, default infra/template.yaml]
set -eu
bin="${1:?usage: infra/use-in-crate.sh <binary name> [template.yaml]}"
template="${2:-infra/template.yaml}"
case "$bin" in
    *[!A-Za-z0-9_-]*) echo "not a binary name: $bin" >&2; exit 2 ;;
esac
sed -e "s#^\(      CodeUri: \)\.\./functions/.*#\1..#" \
    -e "s#^\(        Binary: \).*#\1$bin#" "$template" > "$template.new"
mv "$template.new" "$template"
echo "$template: every function now builds binary $bin from the crate root"
