// Package agent runs programs in a sandbox through a small supervisor
// started ahead of time inside it, so that a warm run costs a fork of an
// interpreter that is already running, not a container and a process start.
//
// The agent is launched through the generic seam (sandbox.Sandbox.Exec),
// so it works on every backend: Python's as `python3 -I -c <bootstrap> <source>`,
// Node's through a shell line that execs an execute-only copy of node (see
// nodeBoot). Its source is embedded here and is the only thing in its argv;
// user content travels only inside frames.
//
// # Protocol
//
// Both ways, a frame is one kind byte, a big-endian uint32 length and a
// payload. The host sends J (a job, JSON: see Job), R (reset) or K (stop
// the stateful kernel); closing its stdin ends the agent. The agent sends
// H (hello: ready, JSON with its pid) at start and after a reset; o and e
// (raw chunks of the job's stdout and stderr, at most 64 KiB each); p (the
// setup script succeeded and the program starts); f (one output file, JSON
// {path, data} or {path, error}); x (the job's end, JSON {code} or {error}
// when it could not start); r (the reply to a reset that failed, or to K).
//
// The job's own stdout and stderr are pipes the agent relays; nothing a job
// writes reaches the control stream unframed, so a job cannot forge the end
// of its run, another job's output, or a reset.
//
// # What a job cannot do to the next one
//
// The agent's processes are not dumpable (Python: prctl; Node: started
// from a file its user cannot read), so a job of the same uid cannot read
// or write their memory or fds; Node's SIGUSR1 inspector is disabled. When
// the program exits the agent kills every other process of the sandbox user
// (daemonized and setsid'd ones too), then reads the output pipes to their
// end: a background child holding stdout cannot keep the run open. A reset
// also empties /sandbox, /tmp, /dev/shm and /dev/mqueue (restoring modes a
// job took away), removes SysV IPC objects, and checks that the limits,
// priority and CPU affinity of the agent's processes and the sandbox's own
// are those they had at start (a job may lower another same-uid process's
// rlimits, which its children would inherit); anything it cannot verify
// fails the reset, and the caller destroys the sandbox. Each Python job is
// forked from a zygote that the bootstrap (agent_boot.py) forked from a bare
// interpreter before the supervisor's own source was compiled, and that
// never reads job data (the first job after a start or a reset runs in a
// fork the zygote made ahead, when no process of any job existed, and
// which takes its job's spec and fds from the supervisor directly; it is
// killed at a reset or before a kernel job, so no other job ever sees it),
// and each Node job runs in a stub started after the previous reset, so no
// job inherits memory that held an earlier job's code, input or secrets.
//
// Differences from running the program with Exec, all minor: Python's code
// runs in a fork of `python3 -I` (sys.flags.isolated is 1, and ctypes and
// marshal are already imported); a job whose environment sets PYTHON*
// or NODE_* start-up variables gets a fresh interpreter instead; process
// ids are not reset between jobs; Node stack traces show the stub's frames.
package agent
