# Running a job: the zygote, the job's process and the output relay. Part of the Python agent (agent.py): the host joins
# agent.py, agent_sandbox.py, agent_job.py and agent_kernel.py into one
# source.

# ---- running a job --------------------------------------------------------

def job_env(job):
    env = dict(BASE_ENV)
    for kv in job.get("env") or []:
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def std_streams():
    """sys.stdin/out/err as `python3 -u` makes them on fds 0-2."""
    enc = "utf-8"
    raw_in = io.FileIO(0, "r", closefd=False)
    raw_out = io.FileIO(1, "w", closefd=False)
    raw_err = io.FileIO(2, "w", closefd=False)
    raw_in.name, raw_out.name, raw_err.name = "<stdin>", "<stdout>", "<stderr>"
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(raw_in), encoding=enc, errors="strict")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(raw_out, encoding=enc, errors="strict", write_through=True)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(raw_err, encoding=enc, errors="backslashreplace",
                                                   write_through=True)


def main_module(path):
    import builtins
    mod = types.ModuleType("__main__")
    mod.__file__ = path
    mod.__builtins__ = builtins
    mod.__cached__ = None
    mod.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    sys.modules["__main__"] = mod
    return mod


def run_source(path, globs):
    """Run a file's code in globs; returns the exit code the way the
    interpreter would (SystemExit, traceback and 1 on an exception)."""
    try:
        with open(path, "rb") as f:
            src = f.read()
        exec(compile(src, path, "exec"), globs)
        return 0
    except SystemExit as e:
        c = e.code
        if c is None:
            return 0
        if isinstance(c, int):
            return c & 0xFF
        try:
            print(c, file=sys.stderr)
        except Exception:
            pass
        return 1
    except BaseException as e:
        # Drop this function's frame: the traceback starts at the code.
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        try:
            sys.excepthook(type(e), e.with_traceback(tb), tb)
        except Exception:
            pass
        if isinstance(e, KeyboardInterrupt):
            return -signal.SIGINT
        return 1


def flush_std():
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass


def code_child(job):
    """In the forked child: run the code file as `python3 -u file` would."""
    set_dumpable(True)
    std_streams()
    path = job["codeFile"]
    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(path))
    import site
    user = site.getusersitepackages()
    if os.path.isdir(user):
        site.addsitedir(user)
    code = run_source(path, main_module(path).__dict__)
    try:
        # As the interpreter's own shutdown does: join the program's threads
        # when it used threading (importing it here would cost ms).
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    flush_std()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def job_child(fds):
    """In a fork of the zygote: read the job's spec, take its stdio, session,
    folder and environment, then run its code or exec its program."""
    stdin_r, out_w, err_w, spec_r, fail_w = fds
    try:
        parts = []
        while True:
            b = os.read(spec_r, 1 << 20)
            if not b:
                break
            parts.append(b)
        spec = json.loads(b"".join(parts))
        os.setsid()
        os.dup2(stdin_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, fail_w)
        os.closerange(fail_w + 1, 65536)
        try:
            os.chdir(spec["dir"])
        except OSError as e:
            raise JobError("workdir %s: %s" % (spec["dir"], e.strerror))
        os.environ.clear()
        os.environ.update(spec["env"])
        argv = spec.get("argv")
        if argv is None:
            os.close(fail_w)
            code_child(spec)
        # An exec'd program starts with the default dispositions a fresh
        # process has, not the interpreter's ignored SIGPIPE and SIGXFSZ.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        try:
            os.set_inheritable(fail_w, False)
            os.execvpe(argv[0], argv, spec["env"])
        except OSError as e:
            raise JobError("exec %s: %s" % (argv[0], e.strerror))
    except BaseException as e:
        try:
            os.write(fail_w, str(e).encode() or b"child failed")
        except OSError:
            pass
    os._exit(127)


def spare_child(sock):
    """Fork the next job's process ahead of its job (a spare): it waits for
    the job's fds on a socket of its own. Returns (pid, the zygote's end of
    that socket)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            sock.close()
            ours.close()
            msg, fds, _, _ = socket.recv_fds(theirs, 16, 8)
            theirs.close()
            if msg == b"F" and len(fds) == 5:
                job_child(fds)
        finally:
            os._exit(1)
    theirs.close()
    return pid, ours


def drop_spare(spare):
    pid, ours = spare
    ours.close()
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    os.waitpid(pid, 0)


def zygote(sock):
    """Forks a job's process for each request and reports its exit. It only
    ever handles fds and pids, so its memory stays that of a fresh agent.

    Requests: W forks a spare for the next job (the supervisor sends it
    only when no process of any job exists, so that no job ever sees a
    spare it does not run in); S starts a job in the spare, or in a new
    fork if there is none; F always in a new fork (a spare is killed); D
    kills the spare, and is answered, before the supervisor sweeps."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # The first compile in a process costs most of a millisecond; its
    # forks inherit what it sets up.
    compile("pass\n", "<isol8>", "exec")
    spare = None
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 8)
        except OSError:
            os._exit(1)
        if not msg:
            os._exit(0)
        if msg in (b"W", b"D"):
            for fd in fds:
                os.close(fd)
            if spare is not None:
                drop_spare(spare)
                spare = None
            if msg == b"W":
                spare = spare_child(sock)
            else:
                sock.send(b"D0")
            continue
        pid = None
        if spare is not None:
            spid, ours = spare
            spare = None
            if msg == b"S":
                try:
                    socket.send_fds(ours, [b"F"], fds)
                    pid = spid
                except OSError:
                    pass
            if pid is None:
                drop_spare((spid, ours))
            else:
                ours.close()
        if pid is None:
            pid = os.fork()
            if pid == 0:
                sock.close()
                job_child(fds)
        for fd in fds:
            os.close(fd)
        sock.send(b"P%d" % pid)
        _, status = os.waitpid(pid, 0)
        sock.send(b"X%d" % exit_code(status))


def start_zygote():
    global ZYGOTE, ZSOCK
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            zygote(theirs)
        finally:
            os._exit(1)
    theirs.close()
    ZYGOTE, ZSOCK = pid, ours


SPARE = False  # the zygote has (or is making) a spare for the next job


def want_spare():
    """Have the zygote fork the next job's process now: only when no
    process of any job exists (at boot, at the end of a reset)."""
    global SPARE
    ZSOCK.send(b"W")
    SPARE = True


def no_spare():
    """Kill the spare, if any: before a sweep (its zombie is the zygote's
    to reap) and before a job that will not start in it."""
    global SPARE
    if SPARE:
        SPARE = False
        ZSOCK.send(b"D")
        zygote_reply(b"D")


def zygote_reply(kind):
    msg = ZSOCK.recv(64)
    if not msg or msg[:1] != kind:
        sys.stderr.write("isol8 agent: the zygote is gone\n")
        os._exit(1)
    return int(msg[1:])


def start_child(job, argv, stdin_r, out_w, err_w):
    """Have the zygote fork a process with the given stdio, in its own
    session, with exactly the job's environment and folder, running the
    code file (argv None) or exec'ing argv. Errors before the program
    starts are raised here as JobError."""
    global SPARE
    spec = {"argv": argv, "env": job_env(job), "dir": job.get("dir") or "/sandbox",
            "codeFile": job.get("codeFile")}
    data = memoryview(json.dumps(spec).encode())
    spec_r, spec_w = os.pipe()
    fail_r, fail_w = os.pipe()
    # The spec goes into its pipe first, as much as the pipe takes without
    # blocking, so that the child finds it there.
    os.set_blocking(spec_w, False)
    try:
        data = data[os.write(spec_w, data):]
    except BlockingIOError:
        pass
    os.set_blocking(spec_w, True)
    try:
        socket.send_fds(ZSOCK, [b"S" if SPARE else b"F"], [stdin_r, out_w, err_w, spec_r, fail_w])
        SPARE = False
    finally:
        os.close(spec_r)
        os.close(fail_w)
    zygote_reply(b"P")
    try:
        while data:
            data = data[os.write(spec_w, data):]
    except OSError:
        pass
    os.close(spec_w)
    msg = b""
    while True:
        b = os.read(fail_r, 4096)
        if not b:
            break
        msg += b
    os.close(fail_r)
    if msg:
        zygote_reply(b"X")
        raise JobError(msg.decode(errors="replace"))


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


