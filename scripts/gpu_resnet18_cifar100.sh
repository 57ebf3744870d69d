#!/usr/bin/env bash
# ResNet-18 / CIFAR-100 zoo + SANE on it, on one CUDA GPU.
#
#   MODELZOO_DATA=~/data bash scripts/gpu_resnet18_cifar100.sh
#
# Needs CIFAR-100 in torchvision's layout ($MODELZOO_DATA/cifar-100-python/{train,test}) or a
# Hugging Face copy (see `zoo sources`); nothing is downloaded. Environment knobs (defaults):
#   MODELS=16 EPOCHS=50 GROUP=8 OUT=zoos/resnet18-cifar100 RUN=runs/sane-resnet18-cifar100
#   SANE_EPOCHS=30 SANE_FROM=25 (SANE trains on checkpoints from this epoch on; 0 if past EPOCHS)
#   DEVICE=cuda (cpu runs the same steps without the GPU check; tests smoke-run it that way)
#   ZOO_ARGS=  extra `zoo build` options, e.g. "--arch-opt width=16 --max-train 5000"
#   SANE_ARGS= SANE model options replacing the paper's ResNet settings below
# The zoo build resumes if interrupted (rerun the script); so does `sane train`.
set -euo pipefail
MODELS=${MODELS:-16}
EPOCHS=${EPOCHS:-50}
GROUP=${GROUP:-8}
OUT=${OUT:-zoos/resnet18-cifar100}
RUN=${RUN:-runs/sane-resnet18-cifar100}
SANE_EPOCHS=${SANE_EPOCHS:-30}
SANE_FROM=${SANE_FROM:-25}
DEVICE=${DEVICE:-cuda}
ZOO_ARGS=${ZOO_ARGS:-}
# SANE settings of the paper for ResNets: token size 288, windows of 2048 tokens (bf16 autocast
# on CUDA).
SANE_ARGS=${SANE_ARGS:---token-size 288 --window-size 2048 --d-model 1024 --n-heads 16 \
--n-layers 8 --latent-dim 128 --batch-size 32}
if (( SANE_FROM > EPOCHS )); then SANE_FROM=0; fi

if [[ $DEVICE == cuda ]]; then
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible')"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi

start=$(date +%s)
# shellcheck disable=SC2086  # ZOO_ARGS/SANE_ARGS are option lists
zoo build cards/resnet18-cifar100.yaml --models "$MODELS" --epochs "$EPOCHS" \
  --group-size "$GROUP" --device "$DEVICE" --out "$OUT" $ZOO_ARGS
zoo info "$OUT"
built=$(date +%s)

# shellcheck disable=SC2086
sane train --zoo "$OUT" --out "$RUN" --device "$DEVICE" $SANE_ARGS \
  --epochs "$SANE_EPOCHS" --epochs-range "$SANE_FROM" "$EPOCHS"
sane embed --run "$RUN" --zoo "$OUT" --out "$RUN/embeddings" --device "$DEVICE"
sane sample --run "$RUN" --zoo "$OUT" --out "$RUN/samples" -n 8 --device "$DEVICE"
done_t=$(date +%s)
echo "zoo build: $((built - start)) s for $MODELS models x $EPOCHS epochs; SANE: $((done_t - built)) s"
