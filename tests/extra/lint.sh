#!/usr/bin/env bash
# Static analysis in `make test`: exactly what `make lint` runs (tools/lint.sh).
exec bash "$(dirname "$0")/../../tools/lint.sh"
