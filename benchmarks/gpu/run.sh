#!/usr/bin/env bash
# The GPU benchmarks in one command (issue 9's fine-tuning, about 5 minutes on one H100/H200-class GPU,
# then issue 13's scoring, about 3; budget 8 each):
#   bash benchmarks/gpu/run.sh [--steps N] [--families modelscope,wan]
# Writes benchmarks/gpu/results.json (fine-tuning) and benchmarks/gpu/scoring.json + scoring.md (scoring).
# See benchmarks/gpu/finetune_gpu.py and benchmarks/gpu/scoring_gpu.py for what is measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout 480 uv run python benchmarks/gpu/finetune_gpu.py --out benchmarks/gpu/results.json "$@"
exec timeout 480 uv run python benchmarks/gpu/scoring_gpu.py --out benchmarks/gpu/scoring.json
