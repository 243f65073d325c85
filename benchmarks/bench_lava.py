"""The converted model as a Lava graph in Lava's CPU simulator: speed and memory, printed as JSON.

    .venv/bin/python benchmarks/bench_lava.py [--model MODEL.s2l | --placement host|chip] [--prefill 128] [--generate 32]

Without --model, the bundled model is converted first (calibration text
examples/demo/calib.txt). Measured in one run:

* prefill: a teacher-forced prompt pipelined one token per time step: tokens/s and
  tokens per step;
* decode: tokens generated inside the running graph: tokens/s and time steps per
  generated token (the token period);
* the number of Lava processes, and the peak memory of the whole process tree
  (this process and every process the runtime forked), sampled every 0.2 s from
  /proc as the sum of RSS (which counts pages shared between the forked processes
  more than once) and of PSS (which splits them fairly);
* the emulator's tokens/s on the same prompt, for the ratio;
* whether the simulator's logits and spikes equal the emulator's.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _tree(root):
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [root], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _mem_kb(pid):
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class TreeMemory(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak_rss = self.peak_pss = 0
        self.peak_procs = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            pids = _tree(os.getpid())
            mem = [_mem_kb(p) for p in pids]
            self.peak_rss = max(self.peak_rss, sum(m[0] for m in mem))
            self.peak_pss = max(self.peak_pss, sum(m[1] for m in mem))
            self.peak_procs = max(self.peak_procs, len(pids))
            self.stop.wait(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--placement", choices=("host", "chip"), default="host",
                    help="without --model: convert the bundled model with this placement")
    ap.add_argument("--prefill", type=int, default=128, help="prompt tokens (teacher forced)")
    ap.add_argument("--generate", type=int, default=32, help="tokens generated inside the graph")
    args = ap.parse_args()
    import numpy as np

    from spike2loihi.convert import artifact
    from spike2loihi.backends import generate
    from spike2loihi.backends.emulator import EmulatorBackend
    from spike2loihi.execute.model_emulator import ModelEmulator
    from spike2loihi.lava.runtime import run_graph
    from spike2loihi.convert.schedule import schedule

    tmp = tempfile.TemporaryDirectory()
    model_path = args.model
    if model_path is None:
        model_path = Path(tmp.name) / "demo.s2l"
        print("converting the bundled model ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "spike2loihi.cli", "convert",
                        str(ROOT / "examples" / "demo" / "spikegpt-demo.pth"), "-o", str(model_path),
                        "--calib", str(ROOT / "examples" / "demo" / "calib.txt"), "--placement", args.placement],
                       check=True, capture_output=True, env=dict(os.environ, SPIKE2LOIHI_PROGRESS="never"))
    model = artifact.load(model_path)
    from converters.tokenizer import artifact_tokenizer
    tok = artifact_tokenizer(model)
    V = model.config["vocab_size"]
    if tok is not None:
        text = (ROOT / "examples" / "demo" / "heldout.txt").read_text()
        prompt = tok.encode(text)[: args.prefill] if tok.kind == "char" else tok.encode(text)[: args.prefill]
    else:
        prompt = [int(t) for t in np.random.default_rng(0).integers(0, V, args.prefill)]
    sched = schedule(model.graph)
    mem = TreeMemory()
    mem.start()
    print("prefill on the Lava simulator ...", file=sys.stderr, flush=True)
    pre = run_graph(model, prompt, 0)
    print("generation on the Lava simulator ...", file=sys.stderr, flush=True)
    gen = run_graph(model, prompt[:8], args.generate, greedy=True)
    mem.stop.set()
    mem.join()
    t0 = time.perf_counter()
    steps = ModelEmulator(model).run(np.asarray(prompt))
    emu_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emu_gen = generate.run(EmulatorBackend(model), prompt[:8], max_new_tokens=args.generate, greedy=True)
    emu_gen_s = emu_gen.generate_s
    equal_prefill = bool(np.array_equal(pre.logits, np.stack([s.logits[0] for s in steps])))
    out = {
        "model": str(model_path), "processes": pre.processes,
        "schedule": sched.to_dict(),
        "compile_s": round(pre.timings["compile_s"], 2),
        "prefill": {"tokens": len(prompt), "steps": pre.steps,
                    "tokens_per_s": round(len(prompt) / pre.timings["run_s"], 2),
                    "steps_per_s": round(pre.timings["steps_per_s"], 2),
                    "tokens_per_step": round(len(prompt) / pre.steps, 3)},
        "decode": {"tokens": args.generate, "steps": gen.steps,
                   "tokens_per_s": round(args.generate / max(gen.timings["generate_s"], 1e-9), 3),
                   "steps_per_generated_token": sched.token_period,
                   "steps_per_s": round(gen.timings["steps_per_s"], 2)},
        "peak_memory_tree": {"rss_sum_mb": round(mem.peak_rss / 1024, 1), "pss_sum_mb": round(mem.peak_pss / 1024, 1),
                             "processes": mem.peak_procs},
        "emulator": {"prefill_tokens_per_s": round(len(prompt) / emu_s, 2),
                     "decode_tokens_per_s": round(args.generate / max(emu_gen_s, 1e-9), 2)},
        "equal_to_emulator": {"prefill_logits": equal_prefill,
                              "generated_tokens": gen.generated == emu_gen.generated_tokens},
    }
    out["emulator_over_lava"] = {
        "prefill": round(out["emulator"]["prefill_tokens_per_s"] / out["prefill"]["tokens_per_s"], 1),
        "decode": round(out["emulator"]["decode_tokens_per_s"] / max(out["decode"]["tokens_per_s"], 1e-9), 1)}
    tmp.cleanup()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
