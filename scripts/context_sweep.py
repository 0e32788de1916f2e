"""Run exp.py configs concurrently on one GPU; one JSON line per config into $OUT/sweep.jsonl."""
import os, subprocess, sys, time, json, shlex
from concurrent.futures import ThreadPoolExecutor
configs = [l.strip() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
jobs = int(sys.argv[2]); budget = float(sys.argv[3])
out = os.environ.get("OUT", "/tmp/out"); os.makedirs(out, exist_ok=True)
deadline = time.time() + budget
here = os.path.dirname(os.path.abspath(__file__))
def run(cfg):
    left = deadline - time.time()
    if left < 20: return cfg, "skipped", None
    cmd = [sys.executable, os.path.join(here, "exp.py"), *shlex.split(cfg)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
    except subprocess.TimeoutExpired:
        return cfg, "timeout", None
    res = [l for l in p.stdout.splitlines() if l.startswith("RESULT")]
    return cfg, ("ok" if res else "fail: " + p.stderr[-600:]), (json.loads(res[0][7:]) if res else None)
t0 = time.time()
with ThreadPoolExecutor(jobs) as ex, open(os.path.join(out, "sweep.jsonl"), "a") as f:
    for cfg, status, res in ex.map(run, configs):
        line = {"cfg": cfg, "status": status, "log": res and res["log"], "t": round(time.time() - t0)}
        f.write(json.dumps(line) + "\n"); f.flush(); print(json.dumps(line), flush=True)
