#!/bin/bash
# Tiny kit pretraining for issue 24 (one call): stage 1 for two video codecs side by side (16 and 32 latent
# channels, 8x spatial), keep the 16-channel one if it reaches 30.3 dB, else the better; stage 2 on it.
START=$(date +%s)
LIMIT=${LIMIT:-540}
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used --format=csv
W=/root/w; mkdir -p $W
S1="--device cuda --audio-codec-from data_samples/tiny --codec-pool 1024 --codec-batch 24 --codec-steps 8000 --codec-lr 1e-3
    --max-codec-seconds ${CODEC_S:-150} --steps 0 --latent-pool 8 --workers 8"
python3 -m ltxic.models.tiny_pretrain --out $W/c16 --latent-channels 16 --spatial 8 $S1 > $W/c16.log 2>&1 &
python3 -m ltxic.models.tiny_pretrain --out $W/c32 --latent-channels 32 --spatial 8 $S1 > $W/c32.log 2>&1 &
wait
tail -c 600 $W/c16.log; tail -c 600 $W/c32.log
PICK=$(python3 - <<'PY'
import json
r = {c: json.load(open(f"/root/w/{c}/pretrain_record.json"))["codec_eval_after"]["video_psnr_db"] for c in ("c16", "c32")}
print("c16" if r["c16"] >= 30.3 or r["c16"] >= r["c32"] else "c32")
PY
)
echo "picked $PICK after $(( $(date +%s) - START )) s"
T=$(( LIMIT - ($(date +%s) - START) - 100 ))
python3 -m ltxic.models.tiny_pretrain --out $W/final --device cuda --from-codecs $W/$PICK --latent-pool 4096 --batch 256 \
    --steps 4000 --lr 5e-4 --max-train-seconds $T --workers 16 2>&1 | tr '\r' '\n' | grep -v "render\|encode" > $W/final.log
tail -n 30 $W/final.log
cp $W/final/transformer.safetensors $W/final/video_codec.safetensors $W/final/text_encoder.safetensors \
   $W/final/pretrain_record.json $W/final/vocab.json $OUT/
for c in c16 c32; do cp $W/$c/pretrain_record.json $W/stage1_$c.json; done
tar cf $OUT/stage1.tar -C $W stage1_c16.json stage1_c32.json c16.log c32.log final.log
echo "done after $(( $(date +%s) - START )) s"
