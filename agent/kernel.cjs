// The long-lived node process of a stateful session (started by agent.mjs).
// Each request (a line of JSON on fd 3) names a code file, evaluated as a
// script in this one realm, so globals and top-level declarations persist
// from run to run. A run ends when the event loop has nothing left to do for
// it; the exit code goes back on fd 3.
"use strict";
const fs = require("fs");
const net = require("net");
const util = require("util");
const vm = require("vm");
const Module = require("module");

class Exit extends Error {
  constructor(code) {
    super("process.exit");
    this.code = code;
  }
}

const exit = process.exit.bind(process);
const ctl = new net.Socket({ fd: 3, readable: true, writable: true });
let buf = "";
let running = false;
let failed = false;

// process.exit ends the run, not the kernel (its state is the point).
process.exit = (code) => {
  throw new Exit(code ?? process.exitCode ?? 0);
};

function report(err) {
  if (err instanceof Exit) {
    process.exitCode = err.code;
    return;
  }
  failed = true;
  const text = err instanceof Error && err.stack ? err.stack : `Uncaught ${util.inspect(err)}`;
  process.stderr.write(text + "\n");
}
process.on("uncaughtException", report);
process.on("unhandledRejection", report);

function start(req) {
  running = true;
  failed = false;
  process.exitCode = undefined;
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, req.env);
  try {
    process.chdir(req.dir);
  } catch {
    // the folder was removed; stay where we are
  }
  process.argv = [process.argv[0], req.codeFile];
  globalThis.require = Module.createRequire(req.codeFile);
  globalThis.__filename = req.codeFile;
  globalThis.__dirname = req.codeFile.slice(0, req.codeFile.lastIndexOf("/")) || "/";
  ctl.unref(); // so that the loop empties when the code's work is done
  try {
    vm.runInThisContext(fs.readFileSync(req.codeFile, "utf8"), { filename: req.codeFile });
  } catch (e) {
    report(e);
  }
}

process.on("beforeExit", () => {
  if (!running) return;
  running = false;
  const code = failed && !process.exitCode ? 1 : process.exitCode ?? 0;
  process.exitCode = undefined;
  let pending = 2;
  const done = () => {
    if (--pending === 0) {
      ctl.ref();
      ctl.write(JSON.stringify({ code }) + "\n");
    }
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
});

ctl.setEncoding("utf8");
ctl.on("data", (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    start(JSON.parse(line));
  }
});
ctl.on("end", () => exit(0)); // the agent is gone
