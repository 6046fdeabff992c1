#!/bin/bash
# Ran from a carried folder holding ltxic/ (with an empty ltxic/__init__.py), the ltx-core 1.0.0 wheel (whl/) and the
# codec files named below; it writes the records, the codecs and the logs under $OUT.
# GPU call 2 (issue 24, decoder-only fine-tuning): continue call 1's two decoders (b: one more residual layer per
# stage; a: the shipped decoder) side by side, from their files (the encoder is the shipped one in both), on a
# larger pool at a lower peak learning rate.
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
S=${TRAIN_S:-220}
mkdir -p /root/w
run() {
  python3 -m ltxic.models.tiny_decoder_tune --codecs $2 --out /root/w/$1 --device cuda --workers 8 \
    --pool 2048 --batch 16 --steps 40000 --lr 2e-4 --warmup 100 --noise 0.05 --curve-every 500 --max-seconds $S > /root/w/$1.log 2>&1
  tr '\r' '\n' < /root/w/$1.log | grep -v "^\s*$" | grep -v "render" | tail -n 20 > $OUT/$1.log
  cp /root/w/$1/decoder_record.json $OUT/${1}_record.json
  cp /root/w/$1/video_codec.safetensors $OUT/${1}_video_codec.safetensors
}
run c b &
run d a &
wait
echo "total $(( $(date +%s) - START )) s"
