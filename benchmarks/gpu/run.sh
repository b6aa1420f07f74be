#!/usr/bin/env bash
# The GPU benchmarks in one command (issue 9's fine-tuning, about 5 minutes on one H100/H200-class GPU,
# then issue 13's scoring, about 3; budget 8 each):
#   bash benchmarks/gpu/run.sh [--steps N] [--families modelscope,wan]
# Writes benchmarks/gpu/results.json (fine-tuning) and benchmarks/gpu/scoring.json + scoring.md (scoring).
# See benchmarks/gpu/finetune_gpu.py and benchmarks/gpu/scoring_gpu.py for what is measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout 480 uv run python benchmarks/gpu/finetune_gpu.py --out benchmarks/gpu/results.json "$@"
timeout 480 uv run python benchmarks/gpu/scoring_gpu.py --out benchmarks/gpu/scoring.json
# Issue 10: one Wan2.1-1.3B GRPO step (K 4, 20 steps, 33x240x416): rollout / update time, peak memory.
timeout 300 uv run python benchmarks/gpu/grpo_gpu.py --out benchmarks/gpu/grpo_results.json
