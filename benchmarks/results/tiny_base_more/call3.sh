#!/bin/bash
# Issue 24, GPU call (2026-12-05, afternoon): the shipped base (call.sh's image-to-video run) trained on, side by
# side on one GPU, on fresh toy identities (--seed 2): with a tenth of the clips image-to-video as before, and with
# half of them. Does giving the first latent frame clean more often teach the base to carry a face it was shown
# while the person walks (walking faces score 0.34 where turning and still ones score 0.84-0.87)? Each run comes
# back as one tar (record, transformer, text encoder); score them on the CPU with identity_recipe_probe.py and
# benchmarks/identity_eval.py before shipping one (benchmarks/README.md, "The tiny base trained on").
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
S=${TRAIN_S:-370}
W=/root/w; mkdir -p $W
run() {  # name, first-frame share
  python3 -m ltxic.models.tiny_pretrain --out $W/$1 --device cuda --from-codecs data_samples/tiny \
    --transformer-from data_samples/tiny --first-frame-p $2 --seed 2 --latent-pool 4096 --batch 512 --steps 3000 \
    --lr 2e-4 --max-train-seconds $S --workers 8 > $W/$1.log 2>&1
  tr '\r' '\n' < $W/$1.log | grep -v "^\s*$" | grep -v "render" | grep -v Warning | tail -n 12 > $OUT/$1.log
  tar -C $W/$1 -cf $OUT/$1.tar pretrain_record.json transformer.safetensors text_encoder.safetensors
}
run i2v_p01 0.1 &
run i2v_p05 0.5 &
wait
ls -la $OUT
