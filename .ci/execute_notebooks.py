#!/usr/bin/env python3
"""Execute notebooks with the evcxr Rust kernel: fail on any cell error, and either compare the
outputs with the ones committed, or record them.

nbconvert/nbclient only notice compile errors: a panic or a `?` error inside an evcxr cell is
written to stderr and execution "succeeds". So every output of every executed cell is
inspected, and an `error` output or any text on stderr fails the run.

The notebooks are committed with their outputs (a reader who runs nothing sees them). Runs on
the CPU are deterministic, so a check run compares every executed cell's outputs with the
committed ones and fails on a difference: the committed outputs are stale. The last bits of the
numbers depend on the matrix kernels the CPU selects (AVX-512 or AVX2), so when this CPU is of
another kind than the recording one, differences are reported but do not fail.

Usage:
  execute_notebooks.py OUT_DIR NOTEBOOK...   check: executed copies are written to OUT_DIR
  execute_notebooks.py --record NOTEBOOK...  record: the outputs are written into the notebooks
                                             (then run `zero-to-r1 notebooks`; see record.sh)
"""
import difflib
import os
import platform
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

RECORDED_ON = "zero_to_r1_recorded_on"


def cpu_kind():
    """The kind of matrix kernels this CPU gets: what the last bits of the numbers depend on."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if "avx512f" in flags:
        level = "avx512f"
    elif "avx2" in flags and "fma" in flags:
        level = "avx2+fma"
    else:
        level = "baseline"
    return f"{platform.machine()} {level}"


def problems(nb):
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.output_type == "stream" and out.get("name") == "stderr":
                found.append(f"cell {i}: stderr: {out.get('text', '').strip()[:2000]}")
    return found


def merge_streams(nb):
    """evcxr sends a stream output per line: merge consecutive ones of the same stream."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.get("outputs", []):
            if (
                out.output_type == "stream"
                and merged
                and merged[-1].output_type == "stream"
                and merged[-1].name == out.name
            ):
                merged[-1].text += out.text
            else:
                merged.append(out)
        cell.outputs = merged


def comparable(cell):
    """A cell's outputs as plain text, for comparison and diffs."""
    lines = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            lines.append(f"[{out.name}]")
            lines += out.text.splitlines()
        elif out.output_type in ("execute_result", "display_data"):
            for mime, value in sorted(out.get("data", {}).items()):
                text = value if isinstance(value, str) else "".join(value)
                lines.append(f"[{mime}]")
                lines += text.splitlines()
    return lines


def differences(committed, executed):
    found = []
    old = [c for c in committed.cells if c.cell_type == "code"]
    new = [c for c in executed.cells if c.cell_type == "code"]
    for k, (a, b) in enumerate(zip(old, new)):
        x, y = comparable(a), comparable(b)
        if x != y:
            diff = list(difflib.unified_diff(x, y, "committed", "executed", n=1, lineterm=""))
            found.append(f"code cell {k}:\n" + "\n".join(d[:160] for d in diff[:24]))
    return found


def execute(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="rust",
        timeout=1800,
        record_timing=False,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    )
    found = []
    try:
        client.execute()
    except CellExecutionError as e:
        found.append(str(e)[:4000])
    merge_streams(nb)
    return nb, found + problems(nb)


def main():
    args = sys.argv[1:]
    record = args[:1] == ["--record"]
    if record:
        out_dir, paths = None, args[1:]
    else:
        out_dir, paths = args[0], args[1:]
        os.makedirs(out_dir, exist_ok=True)
    here = cpu_kind()
    failed = 0
    for path in paths:
        start = time.time()
        committed = nbformat.read(path, as_version=4)
        nb, found = execute(path)
        notes = []
        if record:
            nb.metadata[RECORDED_ON] = here
            if not found:
                nbformat.write(nb, path)
        else:
            nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
            recorded_on = committed.metadata.get(RECORDED_ON)
            stale = differences(committed, nb)
            if stale and recorded_on == here:
                found.append(
                    "the committed outputs differ from this run's (stale: record them again "
                    "with `bash notebooks/record.sh`):\n" + "\n".join(stale)
                )
            elif stale:
                notes.append(
                    f"{len(stale)} cell(s) print differently here ({here}) than where the "
                    f"outputs were recorded ({recorded_on}); not an error: the matrix kernels "
                    "differ. First difference:\n" + stale[0]
                )
        took = time.time() - start
        status = "FAILED" if found else ("recorded" if record else "ok, outputs as committed")
        if notes:
            status = "ok"
        print(f"{path}: {status} in {took:.0f} s", flush=True)
        for p in found + notes:
            print("   ", p.replace("\n", "\n    "), flush=True)
        failed += bool(found)
    print(f"notebooks: {len(paths) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
