#!/usr/bin/env bash
# Issue 13's GPU benchmark of scoring in one command, under 8 minutes on one H100/H200-class GPU (the
# script keeps to a 420 s budget, skipping what would start past it; the timeout is the backstop):
#   bash benchmarks/gpu/run.sh [--budget SECONDS] [--rewards hpsv2,engine,...]
# Writes benchmarks/gpu/scoring.json and scoring.md. Nothing is downloaded: random real-size weights in the
# official formats. See benchmarks/gpu/scoring_gpu.py for what is measured.
# The fine-tuning benchmarks (issues 9 and 10) are a separate command: bash benchmarks/gpu/run_finetune.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout 470 uv run python benchmarks/gpu/scoring_gpu.py --out benchmarks/gpu/scoring.json "$@"
