#!/usr/bin/env bash
# The Python tools the tests use, pinned, each in a virtual environment outside the checkout (Debian's pip
# refuses system-wide installs, and checkov pins versions that moto and cfn-lint do not share). Idempotent:
# an environment whose pins match is kept, so a second run costs nothing.
#
#   $RESTORABLE_TOOLS/aws:     moto (its server: the S3, Secrets Manager, CloudWatch, SNS and SQS emulator)
#                              and cfn-lint
#   $RESTORABLE_TOOLS/checkov: checkov
set -euo pipefail
TOOLS=${RESTORABLE_TOOLS:-/opt/restorable-tools}
declare -A PINS=(
  [aws]='moto[server]==5.2.5 cfn-lint==1.58.0'
  [checkov]='checkov==3.3.30'
)
command -v python3 >/dev/null || { echo "python-tools: python3 not found: install Python 3.11 or later" >&2; exit 1; }
mkdir -p "$TOOLS"
for env in "${!PINS[@]}"; do
  dir=$TOOLS/$env
  if [[ -f $dir/.pins && $(cat "$dir/.pins") == "${PINS[$env]}" ]]; then continue; fi
  rm -rf "$dir"
  python3 -m venv "$dir"
  # shellcheck disable=SC2086 # the pins are words
  "$dir/bin/pip" install --quiet --disable-pip-version-check ${PINS[$env]} \
    || { echo "python-tools: installing ${PINS[$env]} into $dir failed" >&2; exit 1; }
  echo "${PINS[$env]}" > "$dir/.pins"
done
echo "python-tools: moto $("$TOOLS/aws/bin/python" -c "import moto; print(moto.__version__)"), cfn-lint $("$TOOLS/aws/bin/cfn-lint" --version | awk '{print $2}'), checkov $("$TOOLS/checkov/bin/checkov" --version) in $TOOLS"
