#!/usr/bin/env bash
# Issue 9's GPU benchmark in one command (about 5 minutes on one H100/H200-class GPU; budget 8):
#   bash benchmarks/gpu/run.sh [--steps N] [--families modelscope,wan]
# Writes benchmarks/gpu/results.json. See benchmarks/gpu/finetune_gpu.py for what is measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout 480 uv run python benchmarks/gpu/finetune_gpu.py --out benchmarks/gpu/results.json "$@"
# Issue 10: one Wan2.1-1.3B GRPO step (K 4, 20 steps, 33x240x416): rollout / update time, peak memory.
timeout 300 uv run python benchmarks/gpu/grpo_gpu.py --out benchmarks/gpu/grpo_results.json
