# Sourced by docker/build-image.sh and docker/base/build.sh: the one reader of a pinned version.
# pin NAME prints NAME's version from requirements.lock (empty when it is not pinned there).
PINNED_LOCK="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/requirements.lock"
pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "${PINNED_LOCK}"; }
