#!/usr/bin/env python3
"""An adversarial pass over the command line, by hand (a few minutes; not part of CI).

Feeds the binary bad maps, configs, flags, checkpoints and run folders, stops runs with
signals, fills the disk and standard output, and tallies for each category how the binary
answered: a clean error (exit status 1, a message, no panic), a correct acceptance of input
that is in fact valid, a panic, a wrong answer, or lost data.

Usage: .ci/adversarial.py ZERO_TO_R1_BINARY [--no-mount]   (run from the repository root;
the full-disk cases mount a small tmpfs, which needs root; --no-mount skips them)
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

BIN = os.path.abspath(sys.argv[1])
MOUNT = "--no-mount" not in sys.argv
TMP = tempfile.mkdtemp(prefix="z2r1-adversarial-")
TALLY = defaultdict(lambda: defaultdict(int))
FINDINGS = []

TINY = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                         "tiny-r1.toml")).read()


def path(*parts):
    return os.path.join(TMP, *parts)


def write(name, data):
    p = path(name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return p


def run(args, timeout=300, stdout=subprocess.PIPE):
    try:
        return subprocess.run([BIN, *args], stdout=stdout, stderr=subprocess.PIPE,
                              timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        return None


def classify(category, name, proc, valid=False):
    """Tallies one case: `valid` input should be accepted, anything else refused cleanly."""
    if proc is None:
        TALLY[category]["wrong"] += 1
        FINDINGS.append(f"{category}: {name}: did not finish")
    elif "panicked" in proc.stderr or proc.returncode < 0 or proc.returncode > 2:
        TALLY[category]["panics"] += 1
        FINDINGS.append(f"{category}: {name}: exit {proc.returncode}: {proc.stderr[-300:]}")
    elif proc.returncode == 0:
        if valid:
            TALLY[category]["accepted"] += 1
        else:
            TALLY[category]["wrong"] += 1
            FINDINGS.append(f"{category}: {name}: accepted")
    elif valid:
        TALLY[category]["wrong"] += 1
        FINDINGS.append(f"{category}: {name}: refused valid input: {proc.stderr[-300:]}")
    elif "error" in proc.stderr:
        TALLY[category]["clean errors"] += 1
    else:
        TALLY[category]["wrong"] += 1
        FINDINGS.append(f"{category}: {name}: exit {proc.returncode} without a message")
    TALLY[category]["cases"] += 1


def maps():
    cases = {
        "empty": "", "blank lines": "\n\n\n", "ragged": "C..\n.M\n", "unknown char": "C.\n.x\nM.\n",
        "no start": "..\n.M\n", "no meat": "C.\n..\n", "walled in": "C#M\n",
        "too wide": "C" + "." * 200 + "M\n", "too tall": "C\n" + ".\n" * 200 + "M\n",
        "only walls": "###\n###\n", "tab": "C\t.M\n", "lone CR": "C.\rM.\n",
        "NUL": "C.\x00M\n", "emoji": "C🐈M\n", "combining": "C.\u0301M\n",
        "many starts": "CCCM\n", "two meats": "CMM\n", "10k lines": "C.M\n" * 10000,
        "1 MiB line": "C" + "." * (1 << 20) + "M\n",
    }
    valid = {"CRLF": "C.M\r\n...\r\n", "BOM-free small": "C.\n.M\n", "many starts": None,
             "two meats": None}
    for name, text in cases.items():
        p = write(f"maps/{name}.map", text)
        for sub in ["show", "solve"]:
            classify("maps", name, run(["house", sub, "--map", p]), valid=name in valid)
    for name, text in valid.items():
        if text is not None:
            p = write(f"maps/{name}.map", text)
            classify("maps", name, run(["house", "show", "--map", p]), valid=True)
    for name, raw in {"invalid UTF-8": b"C.\xff\xfeM\n", "random bytes": os.urandom(4096)}.items():
        p = write(f"maps/{name}.map", raw)
        classify("maps", name, run(["house", "show", "--map", p]))
    for name, p in {"/dev/zero": "/dev/zero", "a folder": TMP, "missing": path("nope.map"),
                    "/dev/null": "/dev/null"}.items():
        classify("maps", name, run(["house", "show", "--map", p]))


def configs():
    keys = {
        "task": ["difficulty"], "model": ["context", "d_model", "layers", "heads", "mlp", "vocab"],
        "data": ["slip_rate", "missing_tag_rate"],
        "sft": ["steps", "batch_size", "lr", "warmup", "weight_decay", "max_grad_norm"],
        "eval": ["problems", "k", "temperature", "max_new_tokens", "batch_size"],
        "reward": ["format", "accuracy"],
        "grpo": ["steps", "prompts", "group_size", "epochs", "minibatches", "micro_batch", "clip",
                 "beta", "lr", "warmup", "weight_decay", "max_grad_norm", "temperature",
                 "max_new_tokens", "eval_problems"],
    }
    bad_values = ["0", "-1", "1e30", "9223372036854775807", "nan", "inf", '"ten"', "[]"]
    for section, names in keys.items():
        for key in names:
            for v in bad_values:
                p = write("configs/c.toml", f"[{section}]\n{key} = {v}\n")
                proc = run(["lm", "sft", "--config", p, "--steps", "1", "--out", path("cfg-out")])
                shutil.rmtree(path("cfg-out"), ignore_errors=True)
                # Some of these are legal values of some keys (0 weight decay, 0 warm-up…).
                # Some of these are legal values: no warm-up or weight decay, no KL penalty,
                # no format reward, greedy evaluation samples; a clip, a gradient-norm limit
                # or a KL weight so large that it never acts.
                legal = proc is not None and proc.returncode == 0 and (
                    (v == "0" and key in ("warmup", "weight_decay", "micro_batch", "beta",
                                          "slip_rate", "missing_tag_rate", "format", "accuracy",
                                          "temperature"))
                    or (v in ("1e30", "9223372036854775807")
                        and key in ("clip", "beta", "max_grad_norm")))
                classify("configs", f"{section}.{key} = {v}", proc, valid=legal)
    texts = {
        "not TOML": "this is [not toml", "unknown section": "[bogus]\nx = 1\n",
        "unknown key": "[grpo]\nbogus = 1\n", "unknown task": "[task]\nname = \"chess\"\n",
        "heads do not divide": "[model]\nheads = 3\n", "short context": "[task]\ndifficulty = 5\n",
        "huge model": "[model]\nd_model = 65536\nmlp = 65536\n",
        "huge batch": "[sft]\nbatch_size = 60000\n", "aggregation": "[grpo]\naggregation = \"x\"\n",
        "constant:0": "[grpo]\naggregation = \"constant:0\"\n",
        "rates above one": "[data]\nslip_rate = 0.7\nmissing_tag_rate = 0.7\n",
    }
    for name, text in texts.items():
        p = write("configs/c.toml", text)
        classify("configs", name, run(["lm", "sft", "--config", p, "--steps", "1", "--out",
                                       path("cfg-out")]))
    p = write("configs/bad-utf8.toml", b"[task]\nname = \"\xff\"\n")
    classify("configs", "invalid UTF-8", run(["lm", "sft", "--config", p]))
    for name, p in {"/dev/zero": "/dev/zero", "a folder": TMP, "missing": path("no.toml")}.items():
        classify("configs", name, run(["lm", "sft", "--config", p]))


def flags():
    cases = [
        ["lm", "sft", "--steps", "0"], ["lm", "sft", "--seed", "-1"], ["lm", "sft", "--device", "tpu"],
        ["lm", "sft", "--task", "chess"], ["lm", "sample", "-n", "0"], ["lm", "sample", "-n", "99999999"],
        ["lm", "sample", "--temperature", "-1"], ["lm", "sample", "--max-new-tokens", "0"],
        ["lm", "eval", "--problems", "0"], ["lm", "eval", "--problems", "1000000000000"],
        ["lm", "r1-zero", "--algo", "ppo"], ["lm", "r1-zero", "--beta", "-1"],
        ["lm", "r1-zero", "--steps", "0"], ["lm", "r1-zero", "--epochs", "0"],
        ["train", "--algo", "sarsa"], ["train", "--iterations", "0"], ["train", "--gamma", "2"],
        ["house", "solve", "--gamma", "1.5"], ["house", "show", "--slip", "2"],
        ["house", "show", "--max-steps", "0"], ["train", "--clip", "-1", "--algo", "ppo"],
        ["handout", "--chapters", "99", "--out", path("h")], ["handout", "--chapters", "x-y"],
        ["grade", "--dir", path("nothing")], ["tour", "--name", "../x"],
        ["bench", "lm", "--repeats", "0"], ["gpu-check", "--device", "cuda"],
    ]
    for args in cases:
        classify("flags", " ".join(args), run(args, timeout=120))


def checkpoints():
    ck = path("ck")
    cfg = write("ck-config.toml", TINY)
    subprocess.run([BIN, "lm", "sft", "--config", cfg, "--out", ck], check=True,
                   capture_output=True)
    good = open(os.path.join(ck, "model.safetensors"), "rb").read()

    def case(name, mutate, valid=False):
        d = path("ck-" + name.replace(" ", "-"))
        shutil.copytree(ck, d)
        mutate(d)
        classify("checkpoints", name, run(["lm", "sample", "--checkpoint", d, "-n", "1"]), valid)

    w = "model.safetensors"
    case("intact", lambda d: None, valid=True)
    case("no weights", lambda d: os.remove(os.path.join(d, w)))
    case("no shape", lambda d: os.remove(os.path.join(d, "model.toml")))
    case("empty weights", lambda d: open(os.path.join(d, w), "wb").close())
    for cut in [8, 100, len(good) // 2, len(good) - 1]:
        case(f"truncated at {cut}", lambda d, c=cut: open(os.path.join(d, w), "wb").write(good[:c]))
    for seed in range(5):
        rnd = random.Random(seed)
        def flip(d, rnd=rnd):
            b = bytearray(good)
            for _ in range(20):
                b[rnd.randrange(8, 200)] = rnd.randrange(256)
            open(os.path.join(d, w), "wb").write(bytes(b))
        case(f"header bytes flipped {seed}", flip)
    case("random bytes", lambda d: open(os.path.join(d, w), "wb").write(os.urandom(len(good))))
    case("huge header length", lambda d: open(os.path.join(d, w), "wb").write(
        (2**62).to_bytes(8, "little") + good[8:]))
    case("shape garbage", lambda d: open(os.path.join(d, "model.toml"), "w").write("d_model = [\n"))
    case("shape mismatch", lambda d: open(os.path.join(d, "model.toml"), "w").write(
        open(os.path.join(ck, "model.toml")).read().replace("d_model = 16", "d_model = 32")))
    case("huge shape", lambda d: open(os.path.join(d, "model.toml"), "w").write(
        open(os.path.join(ck, "model.toml")).read().replace("layers = 2", "layers = 1000000")))

    def nan(d):
        # The last 4 bytes of the data are the last float of the last tensor: make it NaN.
        b = bytearray(good)
        b[-4:] = bytes([0, 0, 0xC0, 0x7F])
        open(os.path.join(d, w), "wb").write(bytes(b))
    case("a NaN weight", nan)
    case("weights are a folder", lambda d: (os.remove(os.path.join(d, w)),
                                            os.mkdir(os.path.join(d, w))))


def straight_run():
    cfg = write("run-config.toml", TINY)
    out = path("straight")
    subprocess.run([BIN, "lm", "r1-zero", "--config", cfg, "--out", out], check=True,
                   capture_output=True)
    return cfg, outcome(out)


def outcome(out):
    try:
        weights = open(os.path.join(out, "grpo/checkpoints/step-000006/model.safetensors"),
                       "rb").read()
        drop = ("seconds", "sample_tokens_per_second", "train_tokens_per_second")
        lines = [json.loads(l) for l in open(os.path.join(out, "grpo/metrics.jsonl"))]
        metrics = [{k: v for k, v in m.items() if k not in drop} for m in lines]
        summary = json.load(open(os.path.join(out, "summary.json")))
        for k in ("sft_seconds", "grpo_seconds"):
            summary.pop(k)
        return weights, metrics, summary
    except (OSError, ValueError, KeyError) as e:
        return f"unreadable: {e}"


def run_folders(cfg, expected):
    base = path("straight")

    def case(name, mutate, valid=False, check_same=False):
        d = path("rf-" + name.replace(" ", "-"))
        shutil.copytree(base, d)
        mutate(d)
        proc = run(["lm", "r1-zero", "--resume", "--out", d, "--steps", "6"])
        classify("run folders", name, proc, valid)
        if check_same and proc is not None and proc.returncode == 0 and outcome(d) != expected:
            TALLY["run folders"]["wrong"] += 1
            FINDINGS.append(f"run folders: {name}: resumed to another result")

    case("intact", lambda d: None, valid=True, check_same=True)
    case("run.json garbage", lambda d: open(os.path.join(d, "run.json"), "w").write("{"))
    case("run.json missing", lambda d: os.remove(os.path.join(d, "run.json")))
    case("LATEST outside", lambda d: open(os.path.join(d, "grpo/LATEST"), "w").write("../../etc"))
    case("LATEST to nothing", lambda d: open(os.path.join(d, "grpo/LATEST"), "w").write("step-000099"))
    case("state garbage", lambda d: open(os.path.join(
        d, "grpo/checkpoints/step-000006/state.json"), "w").write("[]"))
    case("optimizer truncated", lambda d: open(os.path.join(
        d, "grpo/checkpoints/step-000006/optimizer.safetensors"), "wb").write(b"\x10\x00"))
    case("config garbage", lambda d: open(os.path.join(d, "grpo/config.toml"), "w").write("[grpo\n"))
    case("reference missing", lambda d: shutil.rmtree(os.path.join(d, "grpo/reference")))
    case("metrics with garbage lines", lambda d: open(os.path.join(
        d, "grpo/metrics.jsonl"), "a").write("not json\n{\"step\": 99}\n"), valid=True, check_same=True)
    case("stale temporaries", lambda d: os.makedirs(os.path.join(
        d, "grpo/checkpoints/.step-000007.tmp999")), valid=True, check_same=True)
    # A new run into an existing one: refused, and nothing lost.
    before = outcome(base)
    proc = run(["lm", "r1-zero", "--config", cfg, "--out", base])
    classify("run folders", "new run over an old one", proc)
    if outcome(base) != before:
        TALLY["run folders"]["data lost"] += 1
        FINDINGS.append("run folders: a new run changed an old one")


def resume_or_start(cfg, out):
    """The command that continues the run in `out`, or starts it if it never wrote its settings."""
    if os.path.exists(os.path.join(out, "run.json")):
        return ["lm", "r1-zero", "--resume", "--out", out]
    return ["lm", "r1-zero", "--config", cfg, "--out", out, "--overwrite"]


def finish(category, name, cfg, out, expected):
    """Lets the run in `out` finish and tallies it: the same result as an uninterrupted run,
    another result (wrong), or no result at all (data lost)."""
    proc = run(resume_or_start(cfg, out))
    TALLY[category]["cases"] += 1
    if proc is None or proc.returncode != 0:
        TALLY[category]["data lost"] += 1
        FINDINGS.append(f"{category}: {name}: could not finish: {proc and proc.stderr[-300:]}")
    elif outcome(out) != expected:
        TALLY[category]["wrong"] += 1
        FINDINGS.append(f"{category}: {name}: finished with another result")
    else:
        TALLY[category]["accepted"] += 1


def kills(cfg, expected, n=24):
    rnd = random.Random(0)
    for i in range(n):
        out = path(f"kill-{i}")
        sig = rnd.choice([signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
        stops = 0
        for attempt in range(3):
            p = subprocess.Popen([BIN, *resume_or_start(cfg, out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rnd.uniform(0.0, 0.8))
            if p.poll() is None:
                p.send_signal(sig)
                stops += 1
            p.wait()
        finish("kills", f"{i} ({sig.name}, {stops} stops)", cfg, out, expected)


def full_disk(cfg, expected):
    if not MOUNT:
        return
    mnt = path("small")
    os.makedirs(mnt)
    for size in ["40k", "120k", "300k"]:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt]).returncode:
            return
        try:
            out = os.path.join(mnt, "run")
            proc = run(["lm", "r1-zero", "--config", cfg, "--out", out])
            # The run fits on the largest of these disks: accepted there, refused cleanly on
            # the others.
            classify("full disk", f"disk of {size}", proc, valid=proc is not None
                     and proc.returncode == 0)
            subprocess.run(["mount", "-o", "remount,size=50m", mnt], check=True)
            finish("full disk", f"disk of {size}", cfg, out, expected)
        finally:
            subprocess.run(["umount", mnt])
    with open("/dev/full", "w") as full:
        for args in [["house", "show"], ["house", "solve"], ["train", "--iterations", "2"],
                     ["--help"], ["lm", "sample", "--checkpoint", path("ck"), "-n", "1"],
                     ["handout", "--chapters", "2", "--out", path("h-full")]]:
            classify("full disk", "stdout " + " ".join(args), run(args, stdout=full))


def main():
    t0 = time.time()
    maps()
    configs()
    flags()
    checkpoints()
    cfg, expected = straight_run()
    run_folders(cfg, expected)
    kills(cfg, expected)
    full_disk(cfg, expected)
    cols = ["cases", "clean errors", "accepted", "panics", "wrong", "data lost"]
    print("| category | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for cat, t in TALLY.items():
        print(f"| {cat} | " + " | ".join(str(t[c]) for c in cols) + " |")
    print(f"\n{sum(t['cases'] for t in TALLY.values())} cases in {time.time() - t0:.0f} s")
    for f in FINDINGS:
        print("FINDING", f)
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(1 if FINDINGS else 0)


if __name__ == "__main__":
    main()
