# isol8's in-sandbox agent for Python: the supervisor (see agent/doc.go
# for the protocol).
#
# The host starts it as `python3 -I -c <agent_boot.py> <this source>` through
# the sandbox seam and talks to it in frames on fd 0 (host -> agent) and
# fd 1 (agent -> host). It never runs user code itself: every job runs in a
# child whose stdout and stderr are pipes the agent relays as frames, so a
# job cannot forge a frame.
#
# Two processes: the supervisor (this one) speaks to the host, writes files,
# relays output, kills and cleans; the zygote, forked by the bootstrap
# before this source was even compiled, forks each job's process on
# request and never reads a job's data. A job is therefore a fork of a bare
# warm interpreter whose memory holds nothing of any earlier job (nor of the
# supervisor), and a reset needs no new interpreter. The fork is made ahead
# of the job (a spare, see agent_boot.py) when no process of any job
# exists, and the job's spec and fds go to it straight from the
# supervisor, so that a job waits for neither a fork nor the zygote.
# Neither process is dumpable: jobs (same uid) cannot open their
# /proc/<pid>/mem or fds.
#
# This source is this file, then agent_sandbox.py, agent_job.py and
# agent_kernel.py, then a call of main(): one program, split for reading.
# It runs in the bootstrap's globals (ZYGOTE, ZSOCK, set_dumpable,
# JobError, send_fds, recv_fds, exit_code and the job process's functions).
import base64
import errno
import json
import select
import signal
import stat
import struct
import time

VERSION = 1
SELF = os.getpid()
UID = os.getuid()
HDR = struct.Struct(">cI")
CHUNK = 64 << 10
ROOTS = ("/sandbox", "/tmp")
WIPE = ("/sandbox", "/tmp", "/dev/shm", "/dev/mqueue")
KILL_WAIT = 5.0  # seconds a sweep may take before the sandbox is given up
DRAIN_WAIT = 2.0  # seconds to read output left in pipes after a job


# ---- frames ---------------------------------------------------------------

def send(kind, payload=b""):
    data = memoryview(HDR.pack(kind, len(payload)) + payload)
    while data:
        n = os.write(1, data)
        data = data[n:]


def send_json(kind, obj):
    send(kind, json.dumps(obj).encode())


def read_exact(n):
    parts = []
    while n:
        b = os.read(0, min(n, 1 << 20))
        if not b:
            raise EOFError
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def recv():
    kind, n = HDR.unpack(read_exact(HDR.size))
    return kind, read_exact(n)


# ---- reset and main loop --------------------------------------------------

def reset():
    no_spare()
    kernel_stop()
    if not sweep(True):
        raise OSError("processes survived SIGKILL")
    remove_ipc()
    for d in WIPE:
        wipe(d)
    for pid, fp in FINGERPRINTS.items():
        if fingerprint(pid) != fp:
            raise OSError("process %d's limits, priority or affinity were changed" % pid)
    if scan():
        raise OSError("processes appeared during the reset")
    reaped.clear()
    libc.malloc_trim(0)  # give the job's frames and files back: idle memory
    want_spare()


def handle(kind, payload):
    if kind == b"J":
        job = json.loads(payload)
        try:
            res = do_job(job)
            send_outputs(job)
        except JobError as e:
            res = {"error": str(e)}
        except OSError as e:
            res = {"error": "%s: %s" % (getattr(e, "filename", None) or "agent", e.strerror or e)}
        send_json(b"x", res)
    elif kind == b"R":
        try:
            reset()
        except Exception as e:
            send_json(b"r", {"error": str(e)})
        else:
            hello()
    elif kind == b"K":
        kernel_stop()
        send_json(b"r", {})
    else:
        send_json(b"r", {"error": "unknown frame %r" % kind})


def hello():
    send_json(b"H", {"version": VERSION, "pid": SELF, "lang": "python"})


def boot():
    global INFRA, FINGERPRINTS, BASE_ENV, WAKE_R
    # What is running now is the sandbox's own (its init, its idle process):
    # never killed, and checked at each reset for changes a job could make.
    INFRA = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != SELF:
            try:
                INFRA[int(name)] = proc_stat(int(name))[19]
            except (OSError, IndexError):
                pass
    BASE_ENV = dict(os.environ)
    os.chdir("/")
    FINGERPRINTS = {pid: fingerprint(pid) for pid in [SELF, ZYGOTE] + list(INFRA)}
    WAKE_R, wake_w = os.pipe()
    os.set_blocking(WAKE_R, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    libc.malloc_trim(0)  # what compiling this source left
    want_spare()
    hello()


def main():
    boot()
    while True:
        try:
            kind, payload = recv()
        except EOFError:
            kernel_stop()
            return
        handle(kind, payload)
