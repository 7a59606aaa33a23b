"""archc's glue to Ray: runs the search's candidate evaluations as Ray tasks.

The Rust search driver stays the single source of truth (strategy, journal, report); it
starts this script and talks to it in JSON lines. On stdin it sends
``{"start": ID, "request": REQUEST}`` and ``{"cancel": ID}``; on stdout it reads
``{"id": ID, "message": MESSAGE}``, where MESSAGE is what an ``archc search-worker``
says last (``done`` with the evaluation, or ``failed`` with the error), and one
``{"ready": ...}`` line once connected.

An evaluation with a latency to measure becomes two tasks:

* the timing, on a node with the target resource (``--target-resource``, one unit per
  measurement, so a node given one unit times one network at a time), with every other
  archc worker on that node stopped while it times, as the local executor does;
* the rest (proxies, training), on any node with a free CPU.

Tasks whose worker process or node dies are retried by Ray (``max_retries``); an
evaluation that fails is reported with its error. Nothing here decides what to evaluate.
"""

import argparse
import fcntl
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading

import ray

# Where the archc workers of one node register, so that a timing can stop the others.
NODE_DIR = os.path.join("/tmp", "archc-ray-%d" % os.getuid())


def run_worker(archc, request):
    """Runs ``archc search-worker`` on ``request``; returns its last message."""
    os.makedirs(NODE_DIR, exist_ok=True)
    worker = subprocess.Popen(
        [archc, "search-worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    registered = os.path.join(NODE_DIR, "%d.pid" % worker.pid)
    open(registered, "w").close()
    heal_stopped(worker.pid)
    lock = None
    result = None
    try:
        worker.stdin.write(json.dumps(request) + "\n")
        worker.stdin.flush()
        for line in worker.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("message")
            if kind == "quiet":
                lock = open(os.path.join(NODE_DIR, "measure.lock"), "w")
                fcntl.flock(lock, fcntl.LOCK_EX)
                signal_others(worker.pid, signal.SIGSTOP)
                worker.stdin.write("go\n")
                worker.stdin.flush()
            elif kind == "timed":
                signal_others(worker.pid, signal.SIGCONT)
                lock.close()
                lock = None
            elif kind in ("done", "failed"):
                result = message
        worker.wait()
    finally:
        if lock is not None:
            signal_others(worker.pid, signal.SIGCONT)
            lock.close()
        # Another task may have dropped the registration already, taking it for a stale one
        # once this worker had exited.
        pathlib.Path(registered).unlink(missing_ok=True)
        # A task cancelled mid-evaluation (the search is over, or past its time limit) leaves
        # no worker computing for no one: the Ray worker process lives on, idle, so the
        # worker's parent-death signal does not fire.
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    if result is None:
        stderr = worker.stderr.read()[-2000:]
        result = {
            "message": "failed",
            "error": "the worker died (exit %s) without a result: %s" % (worker.returncode, stderr.strip()),
        }
    return result


def heal_stopped(pid):
    """Lets stopped workers go on when no one is timing: a task killed while it timed (Ray
    then runs it again) never sent its SIGCONT."""
    with open(os.path.join(NODE_DIR, "measure.lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        signal_others(pid, signal.SIGCONT)


def is_worker(pid):
    """Whether process ``pid`` is an archc search worker. Where there is no /proc to ask, any
    registered process is taken for one."""
    if not os.path.isdir("/proc"):
        return True
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"search-worker" in f.read()
    except OSError:
        return False


def signal_others(pid, sig):
    """Sends ``sig`` to every other archc worker registered on this node. A registration
    outlives a task killed outright (Ray's retry of a dead worker, a killed node agent), and
    its pid may name any process since: such a registration is dropped, never signalled (a
    SIGSTOP to an unrelated process, a Ray worker say, stalled an evaluation until its time
    limit)."""
    for name in os.listdir(NODE_DIR):
        if not name.endswith(".pid") or name == "%d.pid" % pid:
            continue
        try:
            other = int(name[:-4])
        except ValueError:
            continue
        if not is_worker(other):
            pathlib.Path(NODE_DIR, name).unlink(missing_ok=True)
            continue
        try:
            os.kill(other, sig)
        except ProcessLookupError:
            pass


@ray.remote(max_retries=3)
def evaluate(archc, request):
    return run_worker(archc, request)


def merge(timing, training):
    """One evaluation from the timing task's latency and the training task's rest."""
    for part in (timing, training):
        if part["message"] != "done":
            return part
    evaluation = training["evaluation"]
    evaluation["latency"] = timing["evaluation"]["latency"]
    evaluation["compile_seconds"] += timing["evaluation"]["compile_seconds"]
    return training


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archc", required=True, help="the archc executable on every node")
    parser.add_argument("--address", default=None, help="the Ray cluster; a local one without")
    parser.add_argument("--target-resource", default=None, help="the resource of nodes that time")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs of each training task")
    args = parser.parse_args()
    ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
    out_lock = threading.Lock()

    def send(line):
        with out_lock:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

    timing_options = {"num_cpus": 1}
    if args.target_resource:
        timing_options["resources"] = {args.target_resource: 1}
    pending = {}

    def finish(ident, refs):
        try:
            parts = ray.get(refs)
            message = parts[0] if len(parts) == 1 else merge(parts[0], parts[1])
        except (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError) as e:
            message = {"message": "failed", "error": "cancelled: %s" % e}
        except Exception as e:  # a task that failed past its retries
            message = {"message": "failed", "error": "ray: %s" % e}
        pending.pop(ident, None)
        send({"id": ident, "message": message})

    send({"ready": ray.cluster_resources()})
    for line in sys.stdin:
        command = json.loads(line)
        if "cancel" in command:
            for ref in pending.get(command["cancel"], []):
                ray.cancel(ref, force=True)
            continue
        ident, request = command["start"], command["request"]
        if request.get("latency") is not None:
            timing = dict(request, train=False)
            training = dict(request, latency=None)
            refs = [
                evaluate.options(**timing_options).remote(args.archc, timing),
                evaluate.options(num_cpus=args.cpus).remote(args.archc, training),
            ]
        else:
            refs = [evaluate.options(num_cpus=args.cpus).remote(args.archc, request)]
        pending[ident] = refs
        threading.Thread(target=finish, args=(ident, refs), daemon=True).start()


if __name__ == "__main__":
    main()
