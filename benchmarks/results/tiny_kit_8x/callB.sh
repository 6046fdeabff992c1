#!/bin/bash
# Issue 24, GPU call B (2026-12-05, evening): the kit on call A's 8x codec with 16 channels (28.2 dB after 4820 steps;
# carried as .whl/c8_16 with the shipped audio codec). Three runs side by side on one GPU:
#  - scratch: stage 2 from a fresh transformer on the new latents, a tenth of the clips image-to-video;
#  - warm:    the same, starting from the shipped transformer and text encoder (their video projections must relearn);
#  - dec:     the codec's decoder fine-tuned alone (the encoder, and so every latent the two transformers learn, kept).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
C=.whl/c8_16
S=${TRAIN_S:-330}
W=/root/w; mkdir -p $W
stage2() {  # name, peak lr, extra args
  python3 -m ltxic.models.tiny_pretrain --out $W/$1 --device cuda --from-codecs $C --first-frame-p 0.1 --seed 3 \
    --latent-pool 3072 --batch 256 --steps 4000 --lr $2 --max-train-seconds $S --workers 5 ${@:3} > $W/$1.log 2>&1
  tr '\r' '\n' < $W/$1.log | grep -v "^\s*$" | grep -v "render" | grep -v Warning | tail -n 8 > $OUT/$1.log
  tar -C $W/$1 -cf $OUT/$1.tar pretrain_record.json transformer.safetensors text_encoder.safetensors
}
stage2 scratch 5e-4 &
stage2 warm 3e-4 --transformer-from data_samples/tiny &
( python3 -m ltxic.models.tiny_decoder_tune --codecs $C --out $W/dec --device cuda --workers 5 --pool 2048 --batch 16 \
    --steps 60000 --lr 3e-4 --warmup 100 --noise 0.05 --curve-every 1000 --max-seconds $(( S + 60 )) > $W/dec.log 2>&1
  tr '\r' '\n' < $W/dec.log | grep -v "^\s*$" | grep -v "render" | tail -n 8 > $OUT/dec.log
  tar -C $W/dec -cf $OUT/dec.tar decoder_record.json video_codec.safetensors ) &
wait
nvidia-smi --query-gpu=name --format=csv >> $OUT/dec.log
ls -la $OUT
