# isol8's in-sandbox agent for Python, first part: the bootstrap, the
# zygote and the code of a job's process (see agent/doc.go for the protocol).
#
# The host starts `python3 -I -c <this file> <the supervisor's source>`.
# This part runs first, in an interpreter that has imported almost nothing:
# it forks the zygote, then runs the supervisor (agent.py and the files
# joined after it) from argv in the parent. The zygote's memory is
# therefore that of a bare interpreter: forking it and tearing a job's
# process down are as cheap as an interpreter allows, and no job's process
# holds the supervisor's code or data, nor, since the zygote never reads a
# job's data, any earlier job's.
#
# Everything here uses built-in modules only (an import in the zygote is
# memory every job's process copies and tears down).
import _signal
import _socket
import io
import marshal
import os
import sys

import ctypes

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE = 4
FD_SIZE = 4  # a C int, as SCM_RIGHTS carries it
SPEC_INLINE = 48 << 10  # a larger spec goes, in a pipe, to a new fork


def set_dumpable(on):
    libc.prctl(PR_SET_DUMPABLE, 1 if on else 0, 0, 0, 0)


# Neither the supervisor nor the zygote is dumpable: a job of the same uid
# cannot open their /proc/<pid>/mem or fds. Inherited by the fork below.
set_dumpable(False)


class JobError(Exception):
    """A job that cannot start; reported to the host as an error, not an exit."""


def send_fds(sock, msg, fds):
    """socket.send_fds without the socket module (and the enum, selectors
    and array modules it imports)."""
    data = b"".join(fd.to_bytes(FD_SIZE, sys.byteorder) for fd in fds)
    sock.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)] if fds else [])


def recv_fds(sock, size, maxfds):
    """socket.recv_fds without the socket module; (message, fds)."""
    msg, anc, _, _ = sock.recvmsg(size, _socket.CMSG_SPACE(maxfds * FD_SIZE))
    fds = []
    for level, kind, data in anc:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            for i in range(0, len(data) - len(data) % FD_SIZE, FD_SIZE):
                fds.append(int.from_bytes(data[i:i + FD_SIZE], sys.byteorder))
    return msg, fds


def exit_code(status):
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


# ---- a job's process ------------------------------------------------------

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
    mod = type(sys)("__main__")
    mod.__file__ = path
    mod.__builtins__ = builtins
    mod.__cached__ = None
    # importlib.machinery's SourceFileLoader, without importing importlib.
    mod.__loader__ = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path)
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
            return -_signal.SIGINT
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
        _signal.signal(-code, _signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def read_all(fd):
    parts = []
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return b"".join(parts)
        parts.append(b)


def job_child(fds, spec):
    """In a fork of the zygote: take the job's stdio, session, folder and
    environment, then run its code or exec its program. fds are stdin,
    stdout, stderr, the failure pipe and, when spec is None, the pipe the
    spec comes in. A failure before the program starts is written to the
    failure pipe; its end without a word means the program started."""
    stdin_r, out_w, err_w, fail_w = fds[:4]
    try:
        if spec is None:
            spec = read_all(fds[4])
        spec = marshal.loads(spec)
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
        argv = spec["argv"]
        if argv is None:
            os.close(fail_w)
            code_child(spec)
        # An exec'd program starts with the default dispositions a fresh
        # process has, not the interpreter's ignored SIGPIPE and SIGXFSZ.
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
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


def rehearse():
    """In a spare: take, before the job comes, the copy-on-write faults
    that starting its code would take (about 400 pages of the zygote that
    the interpreter writes to: reference counts, the allocator's pools),
    by doing what job_child and code_child do, on /dev/null and without
    running anything. Each job_child step redoes its part for real."""
    try:
        spec = marshal.loads(marshal.dumps({"argv": None, "env": dict(os.environ), "dir": "/",
                                            "codeFile": "/sandbox/main.py"}))
        os.chdir(spec["dir"])
        os.environ.clear()
        os.environ.update(spec["env"])
        std_streams()
        import site
        os.path.isdir(site.getusersitepackages())
        main = sys.modules.get("__main__")
        try:
            globs = main_module(spec["codeFile"]).__dict__
        finally:
            sys.modules["__main__"] = main
        exec(compile("print(1)\n", spec["codeFile"], "exec"), globs)
        flush_std()
    except BaseException:
        pass


def spare(sock):
    """A job's process forked ahead of its job: it waits for the job (its
    spec and fds, from the supervisor, on a socket of its own), so that the
    job does not wait for a fork. Closing the socket ends it."""
    rehearse()
    try:
        msg, fds = recv_fds(sock, SPEC_INLINE + 1, 5)
    except OSError:
        os._exit(1)
    sock.close()
    if msg[:1] == b"I" and len(fds) == 4:
        job_child(fds, msg[1:])
    os._exit(1)


# ---- the zygote -----------------------------------------------------------

def zygote(sock):
    """Forks a job's process for each request and reports its exit. It only
    ever handles fds and pids, so its memory stays that of a fresh
    interpreter.

    Requests, one at a time (the next comes after the X of this one):
    W forks a spare and answers P<pid> with the supervisor's end of the
    spare's socket (the supervisor sends it only when no process of any
    job exists, so that no job ever sees a spare it does not run in); F
    forks a job's process with the fds it carries (stdin, stdout, stderr,
    failure pipe, spec pipe) and answers P<pid>. Either way, X<code> follows
    when that process has exited."""
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # The first compile in a process costs most of a millisecond; its
    # forks inherit what it sets up.
    compile("pass\n", "<isol8>", "exec")
    while True:
        try:
            msg, fds = recv_fds(sock, 16, 5)
        except OSError:
            os._exit(1)
        if not msg:
            os._exit(0)
        if msg == b"W":
            for fd in fds:
                os.close(fd)
            ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
            pid = os.fork()
            if pid == 0:
                sock.close()
                ours.close()
                spare(theirs)
            theirs.close()
            send_fds(sock, b"P%d" % pid, [ours.fileno()])
            ours.close()
        elif msg == b"F" and len(fds) == 5:
            pid = os.fork()
            if pid == 0:
                sock.close()
                job_child(fds, None)
            for fd in fds:
                os.close(fd)
            sock.send(b"P%d" % pid)
        else:
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        sock.send(b"X%d" % exit_code(status))


def boot():
    """Fork the zygote; in the parent, run the supervisor's source."""
    global ZYGOTE, ZSOCK
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            zygote(theirs)
        finally:
            os._exit(1)
    theirs.close()
    ZYGOTE, ZSOCK = pid, ours
    src = sys.argv[1]
    del sys.argv[1:]
    exec(compile(src, "<isol8 agent>", "exec"), globals())


boot()
