package securitytest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

func pathCases() []Case {
	return []Case{
		{Name: "paths/files-key-validation", Attack: filesKeyValidation},
		{Name: "paths/shell-metacharacter-names", Attack: shellNames},
		{Name: "paths/output-links-fifos-sparse", Serial: true, Budget: 60 * time.Second, Attack: plantedOutputs},
		{Name: "paths/output-parent-swapped-during-read", Serial: true, Budget: 2 * time.Minute, Attack: outputSwapRace},
		{Name: "paths/session-putfile-through-symlink", Budget: 90 * time.Second, Attack: putThroughSymlink},
		{Name: "paths/session-swapped-during-put-and-get", Budget: 2 * time.Minute, Attack: sessionSwapRace},
	}
}

// badKeys are files keys validation must refuse.
var badKeys = []string{
	"", "sandbox/rel", "/etc/passwd", "/tmp/x", "/sandboxx/y", "/sandbox", "/sandbox/",
	"/sandbox/../etc/passwd", "/sandbox/a/../../etc/x", "/sandbox/./x", "/sandbox//x",
	"/sandbox/a\x00b", "/sandbox/a\nb", "/sandbox/a\rb", "/sandbox/\x1b[31mred", "/sandbox/a\x7fb",
	"/sandbox/\xff\xfe", "/sandbox/" + strings.Repeat("a", 256),
	"/sandbox/" + strings.Repeat("a/", 600) + "x",
}

func filesKeyValidation(t *testing.T, h *H) {
	e := h.Engine(isol8.Python, isol8.Options{})
	for _, key := range badKeys {
		req := h.Request(isol8.Python, "print('ran')")
		// A good file next to the bad one must not be written either.
		req.Files = map[string][]byte{key: []byte("x"), "/sandbox/good.txt": []byte("good")}
		res, err := e.Execute(h.Ctx, req)
		if res != nil {
			t.Errorf("files[%q]: the program ran", key)
		}
		wantInvalid(t, err, "files["+strconv.Quote(key)+"]")

		req = h.Request(isol8.Python, "print('ran')")
		req.OutputPaths = []string{"/sandbox/ok", key}
		_, err = e.Execute(h.Ctx, req)
		wantInvalid(t, err, "outputPaths[1]")
	}
	if n := h.Creates(); n != 0 {
		t.Errorf("%d sandboxes were created for requests that validation should refuse", n)
	}
}

// metaNames are file names full of shell syntax; each must be written
// literally, and nothing in them may run.
var metaNames = []string{
	"/sandbox/$(touch /tmp/pwn).py",
	"/sandbox/`touch /tmp/pwn2`",
	"/sandbox/a;touch /tmp/pwn3;b",
	"/sandbox/x' && touch /tmp/pwn4 && echo '",
	"/sandbox/a|touch /tmp/pwn5",
	"/sandbox/${IFS}touch${IFS}/tmp/pwn6",
	"/sandbox/-rf",
	"/sandbox/--help",
	"/sandbox/*",
	"/sandbox/sp ace/$HOME/x\\y",
	"/sandbox/ü-名前.txt",
	"/sandbox/$(touch /sandbox/pwn7)/inner",
}

func shellNames(t *testing.T, h *H) {
	before, _ := filepath.Glob("/tmp/pwn*")
	e := h.Engine(isol8.Python, isol8.Options{})
	req := h.Request(isol8.Python, pyPrelude+`import glob
names = _json.loads(os.environ["ISOL8_NAMES"])
out = {"missing": [], "wrong": [], "pwned": sorted(glob.glob("/tmp/pwn*") + glob.glob("/sandbox/pwn*")),
       "setup": open("/sandbox/.setup-seen").read().split("\n")}
for n in names:
    try:
        if open(n, "rb").read().decode() != n:
            out["wrong"].append(n)
    except OSError as e:
        out["missing"].append(n + ": " + en(e))
report(out)
`)
	names, _ := json.Marshal(metaNames)
	req.Env = map[string]string{"ISOL8_NAMES": string(names)}
	req.Files = map[string][]byte{}
	for _, n := range metaNames {
		req.Files[n] = []byte(n)
	}
	req.OutputPaths = metaNames
	req.SetupScript = "ls -d /tmp/pwn* /sandbox/pwn* > /sandbox/.setup-seen 2>/dev/null; true\n"
	res, err := e.Execute(h.Ctx, req)
	logResult(t, "run", res, err)
	if !mustRun(t, res, err) {
		return
	}
	var r struct {
		Missing, Wrong, Pwned, Setup []string
	}
	if reportOf(t, res, &r) {
		for _, m := range r.Missing {
			t.Errorf("not written literally: %s", m)
		}
		for _, w := range r.Wrong {
			t.Errorf("written with the wrong content: %q", w)
		}
		if len(r.Pwned) > 0 || slices.ContainsFunc(r.Setup, func(s string) bool { return s != "" }) {
			t.Errorf("a file name was executed: %v (seen at setup: %v)", r.Pwned, r.Setup)
		}
	}
	for _, n := range metaNames {
		if got, ok := res.Files[n]; !ok || string(got) != n {
			t.Errorf("outputPaths %q: read back %q (present %v)", n, clip(string(got), 80), ok)
		}
	}
	if after, _ := filepath.Glob("/tmp/pwn*"); len(after) > len(before) {
		t.Errorf("files appeared on the host: %v", after)
	}
	h.AssertGone(t, res.ContainerID)
}

// plantOutputs turns output paths into links, FIFOs, devices, sparse and
// oversized files before the engine reads them back.
const plantOutputs = `import socket
made = {}
def attempt(name, f):
    try:
        f()
        made[name] = "OK"
    except OSError as e:
        made[name] = en(e)
with open("/sandbox/ok.txt", "w") as f:
    f.write("regular file\n")
for link, target in [("shadow", "/etc/shadow"), ("environ", "/proc/1/environ"), ("passwd", "/etc/passwd"),
                     ("zero", "/dev/zero"), ("etcdir", "/etc"), ("procself", "/proc/self"),
                     ("inside-link", "/sandbox/ok.txt"), ("hostname", "/etc/hostname")]:
    os.symlink(target, "/sandbox/" + link)
os.makedirs("/sandbox/d")
os.symlink("/", "/sandbox/d/root")
os.mkfifo("/sandbox/fifo")
os.mkdir("/sandbox/dir")
with open("/sandbox/sparse", "wb") as f:
    f.truncate(1 << 40)
with open("/sandbox/big", "wb") as f:
    f.write(b"b" * (80 << 20))
attempt("hard link to /etc/shadow", lambda: os.link("/etc/shadow", "/sandbox/hard-shadow"))
attempt("hard link to /etc/passwd", lambda: os.link("/etc/passwd", "/sandbox/hard-passwd"))
s = socket.socket(socket.AF_UNIX)
s.bind("/sandbox/sock")
report(made)
`

var plantedOutputPaths = []string{
	"/sandbox/ok.txt", "/sandbox/shadow", "/sandbox/environ", "/sandbox/passwd", "/sandbox/zero",
	"/sandbox/etcdir/passwd", "/sandbox/etcdir/shadow", "/sandbox/procself/environ",
	"/sandbox/d/root/etc/passwd", "/sandbox/d/root/etc/shadow", "/sandbox/inside-link", "/sandbox/hostname",
	"/sandbox/fifo", "/sandbox/dir", "/sandbox/sparse", "/sandbox/big", "/sandbox/hard-shadow",
	"/sandbox/hard-passwd", "/sandbox/sock", "/sandbox/missing",
}

// plantedOutputs runs plantOutputs alone, watching the test process's
// heap: an oversized or sparse output must never be read.
func plantedOutputs(t *testing.T, h *H) {
	e := h.Engine(isol8.Python, isol8.Options{})
	req := h.Request(isol8.Python, pyPrelude+plantOutputs)
	req.OutputPaths = plantedOutputPaths
	heap := startHeapWatch()
	res, err := e.Execute(h.Ctx, req)
	grew := heap.stop()
	logResult(t, "run", res, err)
	checkPlantedOutputs(t, res, err)
	t.Logf("heap: peak HeapInuse +%s", mib(grew.peakInuse))
	if grew.peakInuse > 3*heapSlack {
		t.Errorf("the test process's heap grew by %s while reading outputs back: a huge file was read", mib(grew.peakInuse))
	}
	if res != nil {
		h.AssertGone(t, res.ContainerID)
	}
}

func checkPlantedOutputs(t *testing.T, res *isol8.Result, err error) {
	if !mustRun(t, res, err) {
		return
	}
	var made map[string]string
	if reportOf(t, res, &made) {
		t.Logf("hard links: %v", made)
	}
	if res.DurationMs > 30000 {
		t.Errorf("reading the planted outputs took %d ms", res.DurationMs)
	}
	t.Logf("returned outputs: %v", sortedKeys(res.Files))
	if got := string(res.Files["/sandbox/ok.txt"]); got != "regular file\n" {
		t.Errorf("the one regular output came back as %q", got)
	}
	for _, p := range plantedOutputPaths[1:] {
		data, ok := res.Files[p]
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(p, "/sandbox/hard-") && !strings.HasPrefix(string(data), "root:"):
			// A hard link the sandbox user could make is a file it may read.
		default:
			t.Errorf("outputPaths %s returned %d bytes: %q", p, len(data), clip(string(data), 80))
		}
	}
}

// swapDuringRead leaves a background process that keeps exchanging
// folders with symbolic links to /etc (and files with links to
// /etc/shadow) while the engine reads the outputs back.
const swapDuringRead = `import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
N = 50
pairs = []
for i in range(N):
    os.mkdir("/sandbox/r%d" % i)
    with open("/sandbox/r%d/shadow" % i, "w") as f:
        f.write("decoy\n")
    os.symlink("/etc", "/sandbox/l%d" % i)
    with open("/sandbox/f%d" % i, "w") as f:
        f.write("decoy\n")
    os.symlink("/etc/shadow", "/sandbox/g%d" % i)
    pairs += [(b"/sandbox/r%d" % i, b"/sandbox/l%d" % i), (b"/sandbox/f%d" % i, b"/sandbox/g%d" % i)]
def exchange(a, b):  # renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(316), ctypes.c_long(-100), ctypes.c_char_p(a), ctypes.c_long(-100), ctypes.c_char_p(b), ctypes.c_long(2))
    return r, ctypes.get_errno()
r, e = exchange(*pairs[0])
exchange(*pairs[0])
if r != 0:
    report({"swap": "NOT TRIED: renameat2 failed with " + _errno.errorcode.get(e, str(e))})
    sys.exit(0)
if os.fork() == 0:
    os.setsid()
    fd = os.open("/dev/null", os.O_RDWR)
    for k in (0, 1, 2):
        os.dup2(fd, k)
    end = time.time() + 40
    while time.time() < end:
        for a, b in pairs:
            exchange(a, b)
    os._exit(0)
time.sleep(0.2)
report({"swap": "swapping"})
`

func swappedOutputPaths() []string {
	var paths []string
	for i := range 50 {
		paths = append(paths, fmt.Sprintf("/sandbox/r%d/shadow", i), fmt.Sprintf("/sandbox/f%d", i))
	}
	return paths
}

// swapRounds is how many times the output race is run before it counts
// as won by the engine: it is a race, and one round may miss.
const swapRounds = 3

func outputSwapRace(t *testing.T, h *H) {
	e := h.Engine(isol8.Python, isol8.Options{})
	for round := 1; round <= swapRounds; round++ {
		req := h.Request(isol8.Python, pyPrelude+swapDuringRead)
		req.OutputPaths = swappedOutputPaths()
		res, err := e.Execute(h.Ctx, req)
		logResult(t, fmt.Sprintf("round %d", round), res, err)
		if !mustRun(t, res, err) {
			return
		}
		h.AssertGone(t, res.ContainerID)
		var r struct{ Swap string }
		if reportOf(t, res, &r) && r.Swap != "swapping" {
			t.Errorf("the race could not be set up: %s", r.Swap)
			return
		}
		var leaked []string
		for _, p := range sortedKeys(res.Files) {
			if data := string(res.Files[p]); data != "decoy\n" {
				leaked = append(leaked, fmt.Sprintf("%s: %q", p, clip(data, 60)))
			}
		}
		t.Logf("round %d: %d of 100 racing outputs were returned, %d of them not the sandbox's own file",
			round, len(res.Files), len(leaked))
		if len(leaked) > 0 {
			t.Errorf("outputPaths followed a link swapped in during the read and returned the target's bytes "+
				"(%d paths), e.g. %s", len(leaked), strings.Join(leaked[:min(3, len(leaked))], "; "))
			return
		}
	}
}

// putThroughSymlink: earlier code plants links in a persistent sandbox;
// PutFile (and a later run's files) through them must stay in /sandbox.
func putThroughSymlink(t *testing.T, h *H) {
	e := h.Engine(isol8.Bash, isol8.Options{Mode: isol8.Persistent})
	res1, err := e.Execute(h.Ctx, h.Request(isol8.Bash, `ln -s /etc /sandbox/link
ln -s /etc/passwd /sandbox/f
mkdir -p /sandbox/d && ln -s / /sandbox/d/root
ln -s /tmp /sandbox/tl
sha256sum /etc/passwd | cut -d' ' -f1
echo =====
cat /etc/passwd
`))
	logResult(t, "run 1", res1, err)
	if !mustRun(t, res1, err) {
		return
	}
	hash, passwd, _ := strings.Cut(res1.Stdout, "\n=====\n")
	evil := []byte("root::0:0:pwned:/root:/bin/bash\n")
	for _, p := range []string{"/sandbox/link/x", "/sandbox/link/passwd", "/sandbox/f", "/sandbox/d/root/etc/pwned", "/sandbox/tl/pwned"} {
		err := e.PutFile(h.Ctx, p, evil)
		t.Logf("PutFile %s: %v", p, err)
	}
	for _, p := range []string{"/sandbox/link/passwd", "/sandbox/link/shadow", "/sandbox/d/root/etc/passwd", "/sandbox/f"} {
		data, err := e.GetFile(h.Ctx, p)
		t.Logf("GetFile %s: %d bytes, %v", p, len(data), err)
		if err == nil && (string(data) == passwd || strings.HasPrefix(string(data), "root:") && !strings.Contains(string(data), "pwned")) {
			t.Errorf("GetFile %s followed a planted link and returned %q", p, clip(string(data), 60))
		}
	}
	req := h.Request(isol8.Bash, "true")
	req.Files = map[string][]byte{"/sandbox/link/y": evil, "/sandbox/d/root/etc/pwned2": evil}
	res2, err := e.Execute(h.Ctx, req)
	logResult(t, "run 2 (files through links)", res2, err)

	check := `sha256sum /etc/passwd | cut -d' ' -f1
for p in /etc/x /etc/y /etc/pwned /etc/pwned2 /tmp/pwned; do [ -e "$p" ] && echo "EXISTS $p"; done
if [ -L /sandbox/f ]; then echo "f=link"; elif [ -f /sandbox/f ]; then echo "f=file"; fi
`
	res3, err := e.Execute(h.Ctx, h.Request(isol8.Bash, check))
	logResult(t, "run 3", res3, err)
	if mustRun(t, res3, err) {
		if got, _, _ := strings.Cut(res3.Stdout, "\n"); got != hash {
			t.Errorf("/etc/passwd changed inside the session: sha256 %s, was %s", got, hash)
		}
		for _, line := range strings.Split(res3.Stdout, "\n") {
			if strings.HasPrefix(line, "EXISTS ") {
				t.Errorf("a write through a planted link landed outside /sandbox: %s", strings.TrimPrefix(line, "EXISTS "))
			}
		}
	}
	fresh := h.Engine(isol8.Bash, isol8.Options{})
	res4, err := fresh.Execute(h.Ctx, h.Request(isol8.Bash, "sha256sum /etc/passwd | cut -d' ' -f1"))
	if mustRun(t, res4, err) && strings.TrimSpace(res4.Stdout) != hash {
		t.Errorf("the image's /etc/passwd changed: sha256 %s in a fresh sandbox, was %s", strings.TrimSpace(res4.Stdout), hash)
	}
}

// swapFlipper (run in a persistent session) leaves a detached process that
// keeps exchanging folders /sandbox/wN with links /sandbox/vN -> /etc until
// /sandbox/stop exists.
const swapFlipper = pyPrelude + `import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
N = int(os.environ["ISOL8_N"])
pairs = []
for i in range(N):
    os.mkdir("/sandbox/w%d" % i)
    with open("/sandbox/w%d/shadow" % i, "w") as f:
        f.write("decoy\n")
    os.symlink("/etc", "/sandbox/v%d" % i)
    pairs.append((b"/sandbox/w%d" % i, b"/sandbox/v%d" % i))
def exchange(a, b):
    return libc.syscall(ctypes.c_long(316), ctypes.c_long(-100), ctypes.c_char_p(a), ctypes.c_long(-100), ctypes.c_char_p(b), ctypes.c_long(2))
if exchange(*pairs[0]) != 0:
    report({"swap": "NOT TRIED: renameat2 failed"})
    sys.exit(0)
exchange(*pairs[0])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open("/dev/null", os.O_RDWR)
        for k in (0, 1, 2):
            os.dup2(fd, k)
        end = time.time() + 60
        while time.time() < end and not os.path.exists("/sandbox/stop"):
            for a, b in pairs:
                exchange(a, b)
        # leave every pair as it was made
        for a, b in pairs:
            if os.path.islink(a):
                exchange(a, b)
    os._exit(0)
time.sleep(0.3)
report({"swap": "swapping"})
`

// sessionSwapRace: PutFile, GetFile and a run's files while planted
// folders keep turning into links to /etc. Nothing may land in /etc and
// no read may return a file of /etc.
func sessionSwapRace(t *testing.T, h *H) {
	const n = 30
	e := h.Engine(isol8.Python, isol8.Options{Mode: isol8.Persistent})
	req := h.Request(isol8.Python, swapFlipper)
	req.Env = map[string]string{"ISOL8_N": strconv.Itoa(n)}
	res, err := e.Execute(h.Ctx, req)
	logResult(t, "run 1 (plant and swap)", res, err)
	if !mustRun(t, res, err) {
		return
	}
	var r struct{ Swap string }
	if !reportOf(t, res, &r) || r.Swap != "swapping" {
		t.Errorf("the race could not be set up: %q", r.Swap)
		return
	}
	puts, leaks := 0, 0
	for i := range n {
		if e.PutFile(h.Ctx, fmt.Sprintf("/sandbox/w%d/isol8-put-%d", i, i), []byte("pwned\n")) == nil {
			puts++
		}
		data, err := e.GetFile(h.Ctx, fmt.Sprintf("/sandbox/w%d/shadow", i))
		if err == nil && string(data) != "decoy\n" {
			leaks++
			if leaks <= 3 {
				t.Errorf("GetFile /sandbox/w%d/shadow returned %q: a link was followed", i, clip(string(data), 60))
			}
		}
	}
	req = h.Request(isol8.Python, "print('files written')")
	req.Files = map[string][]byte{}
	for i := range n {
		req.Files[fmt.Sprintf("/sandbox/w%d/isol8-files-%d", i, i)] = []byte("pwned\n")
	}
	res2, err := e.Execute(h.Ctx, req)
	logResult(t, "run 2 (files)", res2, err)
	res3, err := e.Execute(h.Ctx, h.Request(isol8.Python, pyPrelude+`import glob, time
open("/sandbox/stop", "w").close()
time.sleep(0.3)
report({"etc": sorted(glob.glob("/etc/isol8-*")), "tmp": sorted(glob.glob("/tmp/isol8-*"))})
`))
	logResult(t, "run 3 (look in /etc)", res3, err)
	t.Logf("%d of %d PutFile calls succeeded; %d GetFile calls leaked", puts, n, leaks)
	var found struct{ Etc, Tmp []string }
	if mustRun(t, res3, err) && reportOf(t, res3, &found) && len(found.Etc)+len(found.Tmp) > 0 {
		t.Errorf("writes through swapped links landed outside /sandbox: %v %v", found.Etc, found.Tmp)
	}
	if leaks > 3 {
		t.Errorf("… %d GetFile calls leaked in all", leaks)
	}
}
