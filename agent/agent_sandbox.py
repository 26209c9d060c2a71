# Processes, confined files and the reset's wiping. Part of the Python agent (agent.py): the host joins
# agent.py, agent_sandbox.py, agent_job.py and agent_kernel.py into one
# source.

# ---- processes ------------------------------------------------------------

def proc_stat(pid):
    """The fields of /proc/<pid>/stat after the command name (field 3 first)."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def proc_uid(pid):
    with open("/proc/%d/status" % pid, "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                return int(line.split()[1])
    return -1


def fingerprint(pid):
    """What a job could change about another process of its uid and that a
    later child would inherit: rlimits (prlimit), nice, scheduling policy
    and CPU affinity."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            limits = f.read()
        st = proc_stat(pid)
        with open("/proc/%d/status" % pid) as f:
            cpus = [l for l in f if l.startswith("Cpus_allowed_list")]
        return "%s|%s|%s|%s|%s" % (limits, st[16], st[37], st[38], cpus)
    except (OSError, IndexError):
        return None


def scan():
    """Processes of the sandbox user other than the agent's own two and
    the sandbox's (INFRA: pid -> start time): a list of (pid, state)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == SELF or pid == ZYGOTE:
            continue
        try:
            st = proc_stat(pid)
            if INFRA.get(pid) == st[19] or proc_uid(pid) != UID:
                continue
        except (OSError, IndexError, ValueError):
            continue
        out.append((pid, st[0]))
    return out


reaped = {}  # pid -> wait status of children reaped while waiting for others


def reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reaped[pid] = status


def sweep(zombies):
    """Kill every other process of the user until none is left (zombies
    count when asked); daemonized and setsid'd ones too. False if some
    survive KILL_WAIT (the host then destroys the sandbox)."""
    deadline = time.monotonic() + KILL_WAIT
    while True:
        reap()
        procs = scan()
        living = [p for p, s in procs if s != b"Z"]
        if not living and (not zombies or not procs):
            return True
        for pid in living:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)


# ---- confined file access -------------------------------------------------

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_parent(path, create):
    """Open the folder holding path without following any link, creating
    folders when asked. Returns (dirfd, name). Only /sandbox and /tmp."""
    for root in ROOTS:
        if path.startswith(root + "/"):
            break
    else:
        raise JobError("%s: path is outside /sandbox and /tmp" % path)
    parts = path[len(root) + 1:].split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise JobError("%s: path is not clean" % path)
    fd = os.open(root, O_DIR)
    try:
        for p in parts[:-1]:
            try:
                nfd = os.open(p, O_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(p, 0o755, dir_fd=fd)
                nfd = os.open(p, O_DIR, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise JobError("%s: %s is a link or not a folder" % (path, p))
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def write_file(path, data, mode):
    dfd, name = open_parent(path, True)
    try:
        # Replace whatever is there (a planted link, FIFO or hard link)
        # rather than write through it.
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except (IsADirectoryError, PermissionError):
            raise JobError("%s: a folder is in the way" % path)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def read_output(path, limit):
    """(data, None) or (None, reason); never follows a link, never blocks on
    a FIFO, never reads more than limit bytes."""
    try:
        dfd, name = open_parent(path, False)
    except FileNotFoundError:
        return None, "notfound"
    except JobError:
        return None, "notregular"
    except OSError as e:
        return None, str(e)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY,
                     dir_fd=dfd)
    except FileNotFoundError:
        return None, "notfound"
    except OSError as e:
        return None, "notregular" if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR) else str(e)
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "notregular"
        if st.st_size > limit:
            return None, "toolarge"
        parts, n = [], 0
        while n <= limit:
            b = os.read(fd, min(CHUNK * 16, limit + 1 - n))
            if not b:
                break
            parts.append(b)
            n += len(b)
        if n > limit:
            return None, "toolarge"
        return b"".join(parts), None
    finally:
        os.close(fd)


def wipe_dir(dfd):
    """Remove everything inside an open folder, without following links,
    giving folders back the permissions a job may have taken away."""
    for entry in os.scandir(dfd):
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            os.chmod(name, 0o700, dir_fd=dfd)
            sub = os.open(name, O_DIR, dir_fd=dfd)
            try:
                wipe_dir(sub)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)


def wipe(path):
    try:
        fd = os.open(path, O_DIR)
    except FileNotFoundError:
        return
    try:
        if path == "/sandbox":
            os.fchmod(fd, 0o755)
        wipe_dir(fd)
        if os.listdir(fd):
            raise OSError("%s is not empty after the wipe" % path)
    finally:
        os.close(fd)


def remove_ipc():
    """SysV IPC objects outlive their processes; remove the user's."""
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                if len(f.read().splitlines()) > 1:
                    break
        except OSError:
            pass
    else:
        return
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open("/dev/null", os.O_RDWR)
            for i in (0, 1, 2):
                os.dup2(fd, i)
            os.execv("/usr/bin/ipcrm", ["ipcrm", "--all"])
        finally:
            os._exit(127)
    os.waitpid(pid, 0)
    for kind in ("shm", "msg", "sem"):
        with open("/proc/sysvipc/" + kind) as f:
            if len(f.read().splitlines()) > 1:
                raise OSError("SysV IPC objects remain after ipcrm")


