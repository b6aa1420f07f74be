#!/usr/bin/env bash
# The fine-tuning GPU benchmarks (issues 9 and 10), separate from run.sh's scoring benchmark: issue 9's
# objectives (about 5 minutes on one H100/H200-class GPU, budget 8), then issue 10's GRPO step (budget 5):
#   bash benchmarks/gpu/run_finetune.sh [--steps N] [--families modelscope,wan]
# Writes benchmarks/gpu/results.json and benchmarks/gpu/grpo_results.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout 480 uv run python benchmarks/gpu/finetune_gpu.py --out benchmarks/gpu/results.json "$@"
# Issue 10: one Wan2.1-1.3B GRPO step (K 4, 20 steps, 33x240x416): rollout / update time, peak memory.
timeout 300 uv run python benchmarks/gpu/grpo_gpu.py --out benchmarks/gpu/grpo_results.json
