#!/usr/bin/env bash
# The loss-zoo sweep: 9 variants x 3 seeds on mnist5k, one run after the other, into
# outputs/loss_zoo_mnist5k/<override>/seed=<k>/. Run from the repository root:
#   OMP_NUM_THREADS=1 nice -n 10 nohup bash experiments/loss_zoo_mnist5k/run.sh > outputs/loss_zoo_mnist5k.log 2>&1 &
set -euo pipefail
TRAIN="${TRAIN:-ganforge-train}"
SEEDS="${SEEDS:-0,1,2}"
# The losses (one D for all: layer norm, so the gradient penalties are per sample).
$TRAIN -m experiment=loss_zoo_mnist5k loss=ns,minimax,lsgan,hinge,wgan_gp,r3gan seed=$SEEDS
# The regularizers on the non-saturating loss: spectral norm on D, DiffAugment, ADA.
$TRAIN -m experiment=loss_zoo_mnist5k model.discriminator.spectral_norm=true seed=$SEEDS
$TRAIN -m experiment=loss_zoo_mnist5k augment=diffaugment seed=$SEEDS
# ADA at 1/50 of the paper's speed (10k instead of 500k images for p to move by 1): a run sees 17,920 images.
$TRAIN -m experiment=loss_zoo_mnist5k augment=ada model.augment.speed_images=10000 seed=$SEEDS
