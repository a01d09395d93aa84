#!/usr/bin/env bash
# The always-on fuzz check of `make test`: builds the libFuzzer target, replays every input in
# tests/fuzz/regressions/ (each once crashed it), then fuzzes for 60 s from the seed corpus.
exec bash "$(dirname "$0")/../fuzz/run.sh" "${FUZZ_SECONDS:-60}"
