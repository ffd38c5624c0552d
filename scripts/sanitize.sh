#!/usr/bin/env bash
# The whole test suite again, against a build with AddressSanitizer and
# UndefinedBehaviorSanitizer. The build goes into a copy of the tree
# (.sanitize/, or TB_SANITIZE_DIR), so the normal build is left alone.
# Any sanitizer report fails the run: httpd's error log and the unit
# binary's output are checked, and UBSan aborts on its first report.
# Exit status 0 only on "Result: PASS". Extra arguments go to Apache::Test.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${TB_SANITIZE_DIR:-$ROOT/.sanitize}

# the working tree as it is (tracked and new files, not build products)
rm -rf "$DEST"
mkdir -p "$DEST"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 cp -a --parents -t "$DEST" 2>/dev/null) \
    || (cd "$ROOT" && tar -cf - --exclude=./.sanitize --exclude-vcs --exclude-vcs-ignores . \
        | tar -xf - -C "$DEST")
# the test clients are the same: link them rather than install them again
if [ -d "$ROOT/t/clients/node_modules" ]; then
    cp -al "$ROOT/t/clients/node_modules" "$DEST/t/clients/node_modules"
fi
cd "$DEST"
TB_SANITIZE=1 exec scripts/test.sh "$@"
