#!/usr/bin/env bash
# ResNet-18 / CIFAR-100 zoo + SANE on it, on one CUDA GPU.
#
#   MODELZOO_DATA=~/data bash scripts/gpu_resnet18_cifar100.sh
#
# Needs CIFAR-100 in torchvision's layout ($MODELZOO_DATA/cifar-100-python/{train,test}) or a
# Hugging Face copy (see `zoo sources`); nothing is downloaded. Environment knobs (defaults):
#   MODELS=16 EPOCHS=50 GROUP=8 OUT=zoos/resnet18-cifar100 RUN=runs/sane-resnet18-cifar100
#   SANE_EPOCHS=30
# The zoo build resumes if interrupted (rerun the script); so does `sane train`.
set -euo pipefail
MODELS=${MODELS:-16}
EPOCHS=${EPOCHS:-50}
GROUP=${GROUP:-8}
OUT=${OUT:-zoos/resnet18-cifar100}
RUN=${RUN:-runs/sane-resnet18-cifar100}
SANE_EPOCHS=${SANE_EPOCHS:-30}

python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

start=$(date +%s)
zoo build cards/resnet18-cifar100.yaml --models "$MODELS" --epochs "$EPOCHS" \
  --group-size "$GROUP" --device cuda --out "$OUT"
zoo info "$OUT"
built=$(date +%s)

# SANE settings of the paper for ResNets: token size 288, windows of 2048 tokens (bf16 autocast
# on CUDA), trained on the late checkpoints.
sane train --zoo "$OUT" --out "$RUN" --device cuda --token-size 288 --window-size 2048 \
  --d-model 1024 --n-heads 16 --n-layers 8 --latent-dim 128 --batch-size 32 \
  --epochs "$SANE_EPOCHS" --epochs-range 25 "$EPOCHS"
sane embed --run "$RUN" --zoo "$OUT" --out "$RUN/embeddings" --device cuda
sane sample --run "$RUN" --zoo "$OUT" --out "$RUN/samples" -n 8 --device cuda
done_t=$(date +%s)
echo "zoo build: $((built - start)) s for $MODELS models x $EPOCHS epochs; SANE: $((done_t - built)) s"
