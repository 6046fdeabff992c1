import sys, json, time, tempfile
from pathlib import Path
from ltxic.training.config import example_config, load_config
from ltxic.training.trainer import train
import ltxic
out = Path(tempfile.mkdtemp())
cfg = load_config(example_config("tiny_cpu"))
cfg.optimization.steps = 200; cfg.optimization.warmup_steps = 10
cfg.validation.interval = 0
cfg.output.dir = out / "run"; cfg.output.checkpoint_interval = 200
cfg.dataset.cache_dir = Path(sys.argv[1])
t = time.perf_counter(); r = train(cfg, progress=False); wall = time.perf_counter() - t
st = json.loads((out / "run" / "stages.json").read_text())
print(json.dumps({"tree": ltxic.__file__, "wall_s": round(wall, 2), "median": st.get("step_seconds_median"), "loss_last": r.losses[-1]}))
