#!/usr/bin/env python3
"""Execute every notebook with the evcxr Rust kernel and fail on any cell error.

nbconvert/nbclient only notice compile errors: a panic or a `?` error inside an evcxr cell is
written to stderr and execution "succeeds". So every output of every executed cell is
inspected, and an `error` output or any text on stderr fails the run.

Usage: execute_notebooks.py OUT_DIR NOTEBOOK...   (executed copies are written to OUT_DIR)
"""
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


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


def svg_outputs(nb):
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/svg+xml" in out.get("data", {})
    )


def main():
    out_dir, paths = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    failed = 0
    for path in paths:
        start = time.time()
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            kernel_name="rust",
            timeout=1800,
            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
        )
        found = []
        try:
            client.execute()
        except CellExecutionError as e:
            found.append(str(e)[:4000])
        found += problems(nb)
        nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
        took = time.time() - start
        status = "FAILED" if found else "ok"
        print(f"{path}: {status} in {took:.0f} s, {svg_outputs(nb)} inline SVG figure(s)", flush=True)
        for p in found:
            print("   ", p.replace("\n", "\n    "), flush=True)
        failed += bool(found)
    print(f"notebooks: {len(paths) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
