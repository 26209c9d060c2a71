# The stateful kernel of a session. Part of the Python agent (agent.py): the host joins
# agent.py, agent_sandbox.py, agent_job.py and agent_kernel.py into one
# source.

# ---- the stateful kernel --------------------------------------------------

KERNEL = {}  # pid, req (fd to the kernel), status (fd from it), out, err


def kernel_main():
    """The long-lived child of a stateful session: runs each request's code
    (a line of JSON on fd 3) in one persistent __main__ and answers with its
    exit code on fd 4."""
    set_dumpable(True)
    std_streams()
    globs = main_module("/sandbox/main.py").__dict__
    buf = b""
    while True:
        while b"\n" not in buf:
            b = os.read(3, 1 << 16)
            if not b:
                os._exit(0)
            buf += b
        line, _, buf = buf.partition(b"\n")
        req = json.loads(line)
        os.environ.clear()
        os.environ.update(req["env"])
        try:
            os.chdir(req["dir"])
        except OSError:
            pass
        path = req["codeFile"]
        sys.argv = [path]
        globs["__file__"] = path
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BytesIO(base64.b64decode(req["stdin"])),
                                                     encoding="utf-8")
        code = run_source(path, globs)
        flush_std()
        os.write(4, (json.dumps({"code": 128 - code if code < 0 else code}) + "\n").encode())


def kernel_start(job):
    req_r, req_w = os.pipe()
    st_r, st_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY)
    env = job_env(job)
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            # dup2 of fds that may themselves be 0-4: go through high copies.
            fds = [os.dup(fd) for fd in (null, out_w, err_w, req_r, st_w)]
            for i, fd in enumerate(fds):
                os.dup2(fd, i)
            os.closerange(5, 65536)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                os.chdir(job.get("dir") or "/sandbox")
            except OSError:
                pass
            os.environ.clear()
            os.environ.update(env)
            kernel_main()
        finally:
            os._exit(127)
    for fd in (req_r, st_w, out_w, err_w, null):
        os.close(fd)
    for fd in (out_r, err_r, st_r):
        os.set_blocking(fd, False)
    KERNEL.update(pid=pid, req=req_w, status=st_r, out=out_r, err=err_r)


def kernel_stop():
    """Kill the kernel (and its session), close its pipes; no-op without one."""
    pid = KERNEL.get("pid")
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            reaped.pop(pid, None)
    for k in ("req", "status", "out", "err"):
        if k in KERNEL:
            os.close(KERNEL[k])
    KERNEL.clear()


def kernel_run(job, stdin):
    if not KERNEL:
        kernel_start(job)
    req = {"codeFile": job["codeFile"], "env": job_env(job), "dir": job.get("dir") or "/sandbox",
           "stdin": base64.b64encode(stdin).decode()}
    data = memoryview((json.dumps(req) + "\n").encode())
    try:
        while data:
            data = data[os.write(KERNEL["req"], data):]
    except OSError:
        pass
    poll = select.poll()
    tags = {KERNEL["out"]: b"o", KERNEL["err"]: b"e"}
    for fd in (KERNEL["out"], KERNEL["err"], KERNEL["status"], WAKE_R):
        poll.register(fd, select.POLLIN)
    status = b""
    pid = KERNEL["pid"]
    while True:
        for fd, ev in poll.poll():
            if fd == WAKE_R:
                try:
                    os.read(WAKE_R, 4096)
                except BlockingIOError:
                    pass
            elif fd in tags:
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                if data:
                    send(tags[fd], data)
                else:
                    poll.unregister(fd)
            elif fd == KERNEL["status"]:
                try:
                    status += os.read(fd, 4096)
                except BlockingIOError:
                    pass
        if status.endswith(b"\n"):
            break
        reap()
        if pid in reaped:
            code = exit_code(reaped.pop(pid))
            kernel_drain(tags)
            KERNEL["pid"] = None
            kernel_stop()
            return {"code": code, "kernelLost": True}
    kernel_drain(tags)
    return {"code": json.loads(status)["code"]}


def kernel_drain(tags):
    for fd, tag in tags.items():
        while True:
            try:
                data = os.read(fd, CHUNK)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            send(tag, data)


