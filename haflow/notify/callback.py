"""`python -m haflow.notify.callback`: call one callback of a DAG file, then exit.

Reads {"file", "dags_folder", "first", "as_path", "dag_id", "task", "hook", "index",
"context"} as JSON on stdin, imports the file (from its code version unpacked in `dags_folder`
when `first`, run as the file `as_path`; else from this node's DAGs folder, with its helper
modules importable, as a worker does), finds the function the rule names and calls it with the
context. Exit 0 when it returned; 1 with the traceback on stdout when the file does not import,
the callback is gone or it raised.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from haflow.dag.loader import importable, load_dag_file, locate


def main() -> int:
    request = json.loads(sys.stdin.read())
    path = request["file"]
    if request.get("first"):  # an unpacked code version: its own helpers first, as for tasks
        importable(Path(request["dags_folder"]), first=True)
    elif request.get("dags_folder"):  # helper modules beside the DAG files, as for tasks
        importable(Path(request["dags_folder"]))
        path = locate(path, Path(request["dags_folder"]))
    dags, error = load_dag_file(path, as_path=request.get("as_path"))
    if error is not None:
        print(f"the DAG file does not import: {error.message}", flush=True)
        return 1
    dag = next((d for d in dags if d.dag_id == request["dag_id"]), None)
    if dag is None:
        print(f"{path} no longer defines DAG {request['dag_id']!r}", flush=True)
        return 1
    try:
        fn = dag.callback(request["task"], request["hook"], int(request["index"]))
        fn(request["context"])
    except Exception:
        traceback.print_exc(file=sys.stdout)
        return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
