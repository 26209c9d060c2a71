# Running a job, the supervisor's side: the spare, the start of a job's
# process (its own side is in agent_boot.py) and the output relay. Part of
# the Python agent (agent.py): the host joins
# agent.py, agent_sandbox.py, agent_job.py and agent_kernel.py into one
# source.

# ---- running a job --------------------------------------------------------

def job_env(job):
    env = dict(BASE_ENV)
    for kv in job.get("env") or []:
        k, _, v = kv.partition("=")
        env[k] = v
    return env


SPARE = None  # (pid, socket) of the process the zygote forked for the next job


def want_spare():
    """Have the zygote fork the next job's process now: only when no
    process of any job exists (at boot, at the end of a reset)."""
    global SPARE
    ZSOCK.send(b"W")
    msg, fds = recv_fds(ZSOCK, 64, 1)
    if msg[:1] != b"P" or len(fds) != 1:
        zygote_gone()
    SPARE = (int(msg[1:]), _socket.socket(fileno=fds[0]))


def no_spare():
    """End the spare, if any: before a sweep (its zombie is the zygote's
    to reap) and before a job that will not start in it."""
    global SPARE
    if SPARE is not None:
        pid, sock = SPARE
        SPARE = None
        sock.close()
        try:
            os.kill(pid, signal.SIGKILL)  # the zygote waits for it: pid not reused
        except OSError:
            pass
        zygote_reply(b"X")


def zygote_gone():
    sys.stderr.write("isol8 agent: the zygote is gone\n")
    os._exit(1)


def zygote_reply(kind):
    msg = ZSOCK.recv(64)
    if not msg or msg[:1] != kind:
        zygote_gone()
    return int(msg[1:])


def start_child(job, argv, stdin_r, out_w, err_w):
    """Start a process with the given stdio, in its own session, with
    exactly the job's environment and folder, running the code file (argv
    None) or exec'ing argv: the spare when there is one, else a new fork of
    the zygote. Errors before the program starts are raised here as
    JobError."""
    spec = marshal.dumps({"argv": argv, "env": job_env(job), "dir": job.get("dir") or "/sandbox",
                          "codeFile": job.get("codeFile")})
    fail_r, fail_w = os.pipe()
    fds = [stdin_r, out_w, err_w, fail_w]
    try:
        if not start_in_spare(spec, fds):
            no_spare()  # if any: too small for the spec, or gone
            spec_pipe(spec, fds)
    finally:
        os.close(fail_w)
    msg = read_all(fail_r)
    os.close(fail_r)
    if msg:
        zygote_reply(b"X")
        raise JobError(msg.decode(errors="replace"))


def start_in_spare(spec, fds):
    """Hand the job to the spare, spec and fds in one message; False when
    there is no spare, the spec does not fit, or the spare is gone."""
    global SPARE
    if SPARE is None or len(spec) > SPEC_INLINE:
        return False
    try:
        send_fds(SPARE[1], b"I" + spec, fds)
    except OSError:
        return False
    SPARE[1].close()
    SPARE = None
    return True


def spec_pipe(spec, fds):
    """Start a job's process in a new fork, its spec in a pipe."""
    data = memoryview(spec)
    spec_r, spec_w = os.pipe()
    # The spec goes into its pipe first, as much as the pipe takes without
    # blocking, so that the child finds it there.
    os.set_blocking(spec_w, False)
    try:
        data = data[os.write(spec_w, data):]
    except BlockingIOError:
        pass
    os.set_blocking(spec_w, True)
    try:
        send_fds(ZSOCK, b"F", fds + [spec_r])
    finally:
        os.close(spec_r)
    zygote_reply(b"P")
    try:
        while data:
            data = data[os.write(spec_w, data):]
    except OSError:
        pass
    os.close(spec_w)


class Relay:
    """Copies a child's stdout and stderr into frames and feeds its stdin,
    until the child exits (and, for the last phase, its pipes are drained)."""

    def __init__(self, stdin_data):
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self.tags = {self.out_r: b"o", self.err_r: b"e"}
        self.stdin = memoryview(stdin_data)
        self.poll = select.poll()
        self.poll.register(WAKE_R, select.POLLIN)
        self.poll.register(ZSOCK.fileno(), select.POLLIN)
        self.exit = None
        for fd in self.tags:
            self.poll.register(fd, select.POLLIN)
        if self.stdin:
            os.set_blocking(self.in_w, False)
            self.poll.register(self.in_w, select.POLLOUT)
        else:
            self.close_stdin()

    def child_fds(self):
        return self.in_r, self.out_w, self.err_w

    def started(self):
        for fd in (self.in_r, self.out_w, self.err_w):
            os.close(fd)

    def close_stdin(self):
        if self.in_w is not None:
            try:
                self.poll.unregister(self.in_w)
            except KeyError:
                pass
            os.close(self.in_w)
            self.in_w = None

    def step(self, timeout=None):
        for fd, ev in self.poll.poll(timeout):
            if fd == WAKE_R:
                try:
                    os.read(WAKE_R, 4096)
                except BlockingIOError:
                    pass
            elif fd == ZSOCK.fileno():
                self.exit = zygote_reply(b"X")
            elif fd in self.tags:
                data = os.read(fd, CHUNK)
                if data:
                    send(self.tags[fd], data)
                else:
                    self.poll.unregister(fd)
                    del self.tags[fd]
                    os.close(fd)
            elif fd == self.in_w:
                try:
                    n = os.write(self.in_w, self.stdin[:CHUNK])
                    self.stdin = self.stdin[n:]
                except BlockingIOError:
                    continue
                except OSError:
                    self.stdin = memoryview(b"")
                if not self.stdin:
                    self.close_stdin()

    def wait(self):
        """Relay until the zygote reports the child's exit; its exit code."""
        while self.exit is None:
            self.step()
        self.poll.unregister(ZSOCK.fileno())
        return self.exit

    def drain(self, block):
        """Read what is left; block until EOF (every writer is dead) or
        just take what is there now (writers may live on)."""
        deadline = time.monotonic() + DRAIN_WAIT
        for fd in list(self.tags):
            os.set_blocking(fd, False)
        while self.tags:
            progressed = False
            for fd in list(self.tags):
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                progressed = True
                if data:
                    send(self.tags[fd], data)
                else:
                    del self.tags[fd]
                    self.poll.unregister(fd)
                    os.close(fd)
            if not progressed:
                if not block or time.monotonic() > deadline:
                    break
                self.poll.poll(10)
        self.close()

    def close(self):
        self.close_stdin()
        for fd in list(self.tags):
            os.close(fd)
        self.tags = {}


def run_phase(job, argv, stdin_data, last):
    relay = Relay(stdin_data)
    try:
        start_child(job, argv, *relay.child_fds())
    except BaseException:
        relay.started()
        relay.close()
        raise
    relay.started()
    code = relay.wait()
    relay.close_stdin()
    if last and not job.get("keep"):
        if not sweep(False):
            relay.close()
            raise JobError("processes of the job survived SIGKILL")
        relay.drain(True)
    else:
        relay.drain(False)
    return code


def do_job(job):
    for f in job.get("files") or []:
        write_file(f["path"], base64.b64decode(f.get("data") or ""), f.get("mode") or 0o644)
    setup = job.get("setup")
    if setup:
        code = run_phase(job, setup, b"", False)
        if code != 0:
            return {"code": code}
        send(b"p", b"code")
    stdin = base64.b64decode(job.get("stdin") or "")
    mode = job.get("mode")
    if mode == "kernel":
        no_spare()
        return kernel_run(job, stdin)
    argv = job.get("argv") if mode == "exec" else None
    return {"code": run_phase(job, argv, stdin, True)}


def send_outputs(job):
    limit = job.get("maxFileSize") or 0
    for p in job.get("outputPaths") or []:
        data, why = read_output(p, limit)
        if why == "notfound":
            continue
        if why:
            send_json(b"f", {"path": p, "error": why})
        else:
            send_json(b"f", {"path": p, "data": base64.b64encode(data).decode()})


