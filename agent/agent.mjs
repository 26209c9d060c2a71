// isol8's in-sandbox agent for Node (see agent/doc.go for the protocol).
//
// The host starts it through a shell bootstrap that copies the node binary
// to an execute-only file and execs it: a process started from a file its
// user cannot read is not dumpable, so the jobs (same uid) cannot open this
// agent's /proc/<pid>/mem or fds. Node cannot fork, so each job runs in a
// stub node process spawned ahead of time (stub.cjs) that waits for its job
// on fd 3; a stateful session's code runs in one long-lived kernel
// (kernel.cjs). Frames come in on fd 0 and go out on fd 1; the job's own
// stdout and stderr are pipes relayed here, so a job cannot forge a frame.
import fs from "node:fs";
import os from "node:os";
import { spawn, spawnSync } from "node:child_process";

const VERSION = 1;
const SELF = process.pid;
const UID = process.getuid();
const NODE = "/usr/bin/node";
const ROOTS = ["/sandbox", "/tmp"];
const WIPE = ["/sandbox", "/tmp", "/dev/shm", "/dev/mqueue"];
const KILL_WAIT = 5000;
const DRAIN_WAIT = 2000;
const [STUB, KERNEL_SRC, BIN_COPY] = process.argv.slice(1);

class JobError extends Error {}

// ---- frames -----------------------------------------------------------------

function send(kind, payload = Buffer.alloc(0)) {
  const hdr = Buffer.alloc(5);
  hdr.write(kind, 0, "latin1");
  hdr.writeUInt32BE(payload.length, 1);
  for (const buf of [hdr, payload]) {
    let off = 0;
    while (off < buf.length) {
      try {
        off += fs.writeSync(1, buf, off);
      } catch (e) {
        if (e.code !== "EAGAIN") throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
    }
  }
}
const sendJSON = (kind, obj) => send(kind, Buffer.from(JSON.stringify(obj)));

let inbuf = Buffer.alloc(0);
let inEnded = false;
let wakeReader = null;
fs.createReadStream(null, { fd: 0, highWaterMark: 1 << 20 })
  .on("data", (d) => { inbuf = Buffer.concat([inbuf, d]); wakeReader?.(); })
  .on("end", () => { inEnded = true; wakeReader?.(); })
  .on("error", () => { inEnded = true; wakeReader?.(); });

async function recv() {
  for (;;) {
    if (inbuf.length >= 5) {
      const n = inbuf.readUInt32BE(1);
      if (inbuf.length >= 5 + n) {
        const kind = inbuf.toString("latin1", 0, 1);
        const payload = inbuf.subarray(5, 5 + n);
        inbuf = inbuf.subarray(5 + n);
        return [kind, payload];
      }
    }
    if (inEnded) return [null, null];
    await new Promise((r) => { wakeReader = r; });
    wakeReader = null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

// ---- processes --------------------------------------------------------------

function procStat(pid) {
  const data = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  return data.slice(data.lastIndexOf(")") + 2).split(" ");
}

function procUID(pid) {
  const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "latin1"));
  return m ? Number(m[1]) : -1;
}

// What a job could change about another process of its uid that a later
// child would inherit: rlimits, nice, scheduling policy, CPU affinity.
function fingerprint(pid) {
  try {
    const st = procStat(pid);
    const cpus = /^Cpus_allowed_list:.*$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "latin1"));
    return [fs.readFileSync(`/proc/${pid}/limits`, "latin1"), st[16], st[37], st[38], cpus?.[0]].join("|");
  } catch {
    return null;
  }
}

// Processes of the sandbox user other than this agent and the sandbox's own.
function scan() {
  const out = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === SELF) continue;
    try {
      const st = procStat(pid);
      if (INFRA.get(pid) === st[19] || procUID(pid) !== UID) continue;
      out.push([pid, st[0]]);
    } catch {
      // gone
    }
  }
  return out;
}

// Kill every other process of the user until none is left (zombies count
// when asked); daemonized and setsid'd ones too.
async function sweep(zombies) {
  const deadline = Date.now() + KILL_WAIT;
  for (;;) {
    const procs = scan();
    const living = procs.filter(([, s]) => s !== "Z");
    if (living.length === 0 && (!zombies || procs.length === 0)) return true;
    for (const [pid] of living) {
      try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    }
    if (Date.now() > deadline) return false;
    await sleep(1); // lets libuv reap our own children
  }
}

function exitCode(code, signal) {
  if (signal) return 128 + (os.constants.signals[signal] ?? 0);
  return code ?? 0;
}

// ---- confined file access ----------------------------------------------------

const C = fs.constants;

// Checks every folder of path without following links (the jobs that could
// swap one are dead or not yet started when files are written or read).
function parentOf(path, create) {
  const root = ROOTS.find((r) => path.startsWith(r + "/"));
  if (!root) throw new JobError(`${path}: path is outside /sandbox and /tmp`);
  const parts = path.slice(root.length + 1).split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) throw new JobError(`${path}: path is not clean`);
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir += "/" + p;
    let st;
    try {
      st = fs.lstatSync(dir);
    } catch (e) {
      if (e.code !== "ENOENT" || !create) throw e;
      fs.mkdirSync(dir, 0o755);
      st = fs.lstatSync(dir);
    }
    if (!st.isDirectory()) throw new JobError(`${path}: ${p} is a link or not a folder`);
  }
  return dir + "/" + parts[parts.length - 1];
}

function writeFile(path, data, mode) {
  const p = parentOf(path, true);
  try {
    fs.unlinkSync(p); // replace a planted link, FIFO or hard link
  } catch (e) {
    if (e.code === "EISDIR" || e.code === "EPERM") throw new JobError(`${path}: a folder is in the way`);
    if (e.code !== "ENOENT") throw e;
  }
  const fd = fs.openSync(p, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  try {
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off);
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

function readOutput(path, limit) {
  let p, fd;
  try {
    p = parentOf(path, false);
    fd = fs.openSync(p, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_NOCTTY);
  } catch (e) {
    if (e.code === "ENOENT") return [null, "notfound"];
    if (e instanceof JobError || ["ELOOP", "ENXIO", "EISDIR", "ENOTDIR"].includes(e.code)) return [null, "notregular"];
    return [null, String(e.message)];
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return [null, "notregular"];
    if (st.size > limit) return [null, "toolarge"];
    const buf = Buffer.alloc(Math.min(st.size, limit) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) return [null, "toolarge"];
      const r = fs.readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    return [buf.subarray(0, n), null];
  } finally {
    fs.closeSync(fd);
  }
}

// Remove everything in a folder without following links, giving folders
// back the permissions a job may have taken away.
function wipeDir(dir) {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = dir + "/" + ent.name;
    if (ent.isDirectory()) {
      fs.chmodSync(p, 0o700);
      wipeDir(p);
      fs.rmdirSync(p);
    } else {
      fs.unlinkSync(p);
    }
  }
}

function wipe(dir) {
  if (!fs.existsSync(dir)) return;
  if (dir === "/sandbox") fs.chmodSync(dir, 0o755);
  wipeDir(dir);
  if (fs.readdirSync(dir).length) throw new Error(`${dir} is not empty after the wipe`);
}

const ipcCount = () =>
  ["shm", "msg", "sem"].reduce((n, k) => {
    try {
      return n + fs.readFileSync(`/proc/sysvipc/${k}`, "latin1").trim().split("\n").length - 1;
    } catch {
      return n;
    }
  }, 0);

// SysV IPC objects outlive their processes; remove the user's.
function removeIPC() {
  if (ipcCount() === 0) return;
  spawnSync("/usr/bin/ipcrm", ["--all"], { stdio: "ignore" });
  if (ipcCount() !== 0) throw new Error("SysV IPC objects remain after ipcrm");
}

// ---- children -----------------------------------------------------------------

function jobEnv(job) {
  const env = { ...BASE_ENV };
  for (const kv of job.env ?? []) {
    const i = kv.indexOf("=");
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

// Variables node reads only at start: a job that sets one gets a fresh node.
const startupEnv = (env) => Object.keys(env).some((k) => (k.startsWith("NODE_") && k !== "NODE_ENV" && k !== "NODE_PATH") || k.startsWith("UV_"));

// A stub: a node process started ahead of time that runs one job's code
// file once told which (stub.cjs). ready resolves when it waits on fd 3.
function spawnStub() {
  const child = spawn(NODE, ["-e", STUB], {
    cwd: "/", env: BASE_ENV, detached: true, stdio: ["pipe", "pipe", "pipe", "pipe"],
  });
  const stub = { child, exited: null };
  stub.exit = new Promise((r) => child.on("exit", (code, sig) => { stub.exited = exitCode(code, sig); r(stub.exited); }));
  child.on("error", () => {});
  stub.ready = new Promise((resolve) => {
    child.stdio[3].once("data", (d) => resolve(d.toString() === "R"));
    stub.exit.then(() => resolve(false));
  });
  return stub;
}

// Runs one child to its exit, relaying its output; last means kill every
// other process afterwards and read the pipes to their end.
async function relay(child, stdin, last, keep) {
  const out = { bytes: 0, open: 2 };
  let closed;
  const allClosed = new Promise((r) => { closed = r; });
  for (const [stream, tag] of [[child.stdout, "o"], [child.stderr, "e"]]) {
    stream.on("data", (d) => { out.bytes += d.length; send(tag, d); });
    stream.on("close", () => { if (--out.open === 0) closed(); });
    stream.on("error", () => {});
  }
  child.stdin.on("error", () => {});
  child.stdin.end(stdin);
  const exited = new Promise((r) => child.on("exit", (code, sig) => r(exitCode(code, sig))));
  const code = child.exitCode !== null || child.signalCode ? exitCode(child.exitCode, child.signalCode) : await exited;
  if (last && !keep) {
    if (!(await sweep(false))) throw new JobError("processes of the job survived SIGKILL");
    await Promise.race([allClosed, sleep(DRAIN_WAIT)]);
  } else {
    let seen = -1;
    while (seen !== out.bytes) {
      seen = out.bytes;
      await tick();
      await tick();
    }
  }
  child.stdout.destroy();
  child.stderr.destroy();
  return code;
}

function spawnExec(job, argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: job.dir || "/sandbox", env: jobEnv(job), detached: true, stdio: ["pipe", "pipe", "pipe"],
    });
    child.once("error", (e) => reject(new JobError(`exec ${argv[0]}: ${e.message}`)));
    child.once("spawn", () => resolve(child));
  });
}

let stub = null;

async function runCode(job, stdin) {
  const env = jobEnv(job);
  if (startupEnv(env)) {
    return relay(await spawnExec(job, [NODE, job.codeFile]), stdin, true, job.keep);
  }
  const s = stub ?? spawnStub();
  stub = null;
  if (!(await s.ready)) throw new JobError("the node stub did not start");
  const answer = new Promise((r) => s.child.stdio[3].once("data", (d) => r(d.toString())));
  s.child.stdio[3].write(JSON.stringify({ codeFile: job.codeFile, env, dir: job.dir || "/sandbox" }) + "\n");
  const a = await Promise.race([answer, s.exit.then(() => "Ethe node stub exited")]);
  if (a[0] !== "S") {
    s.child.kill("SIGKILL");
    throw new JobError(a.slice(1));
  }
  return relay(s.child, stdin, true, job.keep);
}

async function doJob(job) {
  for (const f of job.files ?? []) writeFile(f.path, Buffer.from(f.data ?? "", "base64"), f.mode || 0o644);
  if (job.setup?.length) {
    const code = await relay(await spawnExec(job, job.setup), Buffer.alloc(0), false, false);
    if (code !== 0) return { code };
    send("p", Buffer.from("code"));
  }
  const stdin = Buffer.from(job.stdin ?? "", "base64");
  if (job.mode === "kernel") return kernelRun(job, stdin);
  if (job.mode === "exec") return { code: await relay(await spawnExec(job, job.argv), stdin, true, job.keep) };
  return { code: await runCode(job, stdin) };
}

function sendOutputs(job) {
  for (const p of job.outputPaths ?? []) {
    const [data, why] = readOutput(p, job.maxFileSize ?? 0);
    if (why === "notfound") continue;
    sendJSON("f", why ? { path: p, error: why } : { path: p, data: data.toString("base64") });
  }
}

// ---- the stateful kernel -------------------------------------------------------

let kernel = null;

function kernelStart(job) {
  const child = spawn(NODE, ["-e", KERNEL_SRC], {
    cwd: job.dir || "/sandbox", env: jobEnv(job), detached: true, stdio: ["ignore", "pipe", "pipe", "pipe"],
  });
  const k = { child, bytes: 0, listener: null, status: "", exited: null, pending: [] };
  child.on("error", () => {});
  for (const [stream, tag] of [[child.stdout, "o"], [child.stderr, "e"]]) {
    stream.on("data", (d) => {
      k.bytes += d.length;
      if (k.listener) send(tag, d);
      else if (k.pending.length < 1024) k.pending.push([tag, d]); // shown with the next run
    });
  }
  child.stdio[3].on("data", (d) => { k.status += d.toString(); k.listener?.(); });
  child.on("exit", (code, sig) => { k.exited = exitCode(code, sig); k.listener?.(); });
  return k;
}

function kernelStop() {
  if (!kernel) return;
  try { process.kill(-kernel.child.pid, "SIGKILL"); } catch { /* gone */ }
  kernel = null;
}

async function kernelRun(job, stdin) {
  if (!kernel || kernel.exited !== null) kernel = kernelStart(job);
  const k = kernel;
  for (const [tag, d] of k.pending.splice(0)) send(tag, d);
  let wake;
  k.listener = () => wake?.();
  k.status = "";
  k.child.stdio[3].write(JSON.stringify({
    codeFile: job.codeFile, env: jobEnv(job), dir: job.dir || "/sandbox", stdin: stdin.toString("base64"),
  }) + "\n");
  try {
    while (!k.status.endsWith("\n") && k.exited === null) await new Promise((r) => { wake = r; });
    let seen = -1;
    while (seen !== k.bytes) {
      seen = k.bytes;
      await tick();
      await tick();
    }
  } finally {
    k.listener = null;
  }
  if (!k.status.endsWith("\n")) {
    kernelStop();
    return { code: k.exited, kernelLost: true };
  }
  return { code: JSON.parse(k.status).code };
}

// ---- reset and main loop ---------------------------------------------------------

async function reset() {
  kernelStop();
  stub?.child.kill("SIGKILL");
  stub = null;
  if (!(await sweep(true))) throw new Error("processes survived SIGKILL");
  removeIPC();
  for (const d of WIPE) wipe(d);
  if (fingerprint(SELF) !== STATE.self) throw new Error("the agent's limits, priority or affinity were changed");
  for (const [pid, [, fp]] of Object.entries(STATE.infra)) {
    if (fingerprint(pid) !== fp) throw new Error(`process ${pid}'s limits, priority or affinity were changed`);
  }
  if (scan().length) throw new Error("processes appeared during the reset");
  stub = spawnStub();
  if (!(await stub.ready)) throw new Error("the node stub did not start");
}

async function handle(kind, payload) {
  if (kind === "J") {
    const job = JSON.parse(payload.toString());
    let res;
    try {
      res = await doJob(job);
      sendOutputs(job);
    } catch (e) {
      res = { error: e instanceof JobError ? e.message : `agent: ${e.message}` };
    }
    sendJSON("x", res);
  } else if (kind === "R") {
    try {
      await reset();
      sendJSON("H", { version: VERSION, pid: SELF, lang: "node" });
    } catch (e) {
      sendJSON("r", { error: e.message });
    }
  } else if (kind === "K") {
    kernelStop();
    sendJSON("r", {});
  } else {
    sendJSON("r", { error: `unknown frame ${kind}` });
  }
}

// ---- start -----------------------------------------------------------------------

const INFRA = new Map();
const STATE = { infra: {}, self: fingerprint(SELF) };
for (const name of fs.readdirSync("/proc")) {
  if (!/^\d+$/.test(name) || Number(name) === SELF) continue;
  try {
    const start = procStat(name)[19];
    INFRA.set(Number(name), start);
    STATE.infra[name] = [start, fingerprint(name)];
  } catch {
    // gone
  }
}
const BASE_ENV = { ...process.env };
if (BIN_COPY) {
  // The execute-only copy this agent runs from is no longer needed.
  try { fs.unlinkSync(BIN_COPY); fs.rmdirSync(BIN_COPY.slice(0, BIN_COPY.lastIndexOf("/"))); } catch { /* gone */ }
}
process.chdir("/");
process.title = "isol8-agent"; // not the random path of the binary's copy
// SIGUSR1 starts node's inspector on loopback, where a job (which may
// signal this same-uid process) could attach to the agent; a listener of
// our own keeps that from happening.
process.on("SIGUSR1", () => {});
stub = spawnStub();
if (!(await stub.ready)) {
  process.stderr.write("isol8 agent: the node stub did not start\n");
  process.exit(1);
}
sendJSON("H", { version: VERSION, pid: SELF, lang: "node" });
for (;;) {
  const [kind, payload] = await recv();
  if (kind === null) break;
  await handle(kind, payload);
}
kernelStop();
stub?.child.kill("SIGKILL");
process.exit(0);
