// A node process started ahead of a job by agent.mjs. It says "R" on fd 3
// when ready, reads its job (one line of JSON) from fd 3, answers "S" once
// it has taken the job's folder and environment (or "E" and why), closes
// fd 3, and runs the code file the way `node <file>` would.
"use strict";
const fs = require("fs");
fs.writeSync(3, "R");
let line = "";
const buf = Buffer.alloc(1 << 16);
while (!line.endsWith("\n")) {
  const n = fs.readSync(3, buf, 0, buf.length, null);
  if (n === 0) process.exit(0);
  line += buf.toString("utf8", 0, n);
}
const job = JSON.parse(line);
try {
  process.chdir(job.dir);
} catch (e) {
  fs.writeSync(3, `Eworkdir ${job.dir}: ${e.message}`);
  process.exit(127);
}
for (const k of Object.keys(process.env)) delete process.env[k];
Object.assign(process.env, job.env);
fs.writeSync(3, "S");
fs.closeSync(3);
process.argv = [process.argv[0], job.codeFile];
process.execArgv = [];
delete process._eval;
const Module = require("module");
Module._initPaths(); // HOME and NODE_PATH were read at start; read them again
Module.runMain(job.codeFile);
