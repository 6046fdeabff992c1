#!/bin/bash
# Ran from a carried folder holding ltxic/ (with an empty ltxic/__init__.py), the ltx-core 1.0.0 wheel (whl/) and the
# codec files named below; it writes the records, the codecs and the logs under $OUT.
# GPU call 1 (issue 24, decoder-only fine-tuning): two decoders side by side on one GPU, from the shipped codec:
# a = the shipped decoder, b = one more residual layer per stage (starts as the identity).
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
S=${TRAIN_S:-150}
mkdir -p /root/w
run() {
  python3 -m ltxic.models.tiny_decoder_tune --codecs data_samples/tiny --out /root/w/$1 --device cuda --workers 8 \
    --pool 1024 --batch 16 --steps 40000 --lr 4e-4 --warmup 100 --noise 0.05 --curve-every 250 --max-seconds $S "${@:2}" > /root/w/$1.log 2>&1
  tr '\r' '\n' < /root/w/$1.log | grep -v "^\s*$" | grep -v "render" | tail -n 30 > $OUT/$1.log
  cp /root/w/$1/decoder_record.json $OUT/${1}_record.json
  cp /root/w/$1/video_codec.safetensors $OUT/${1}_video_codec.safetensors
}
run a --extra-layers 0 &
run b --extra-layers 1 &
wait
echo "total $(( $(date +%s) - START )) s"
