// Package audit keeps the audit log of executions: one JSON object per line
// and per execution (streamed or not, successful, failed or refused), with
// who ran it (tenant and key id, never the key itself), what ran (runtime,
// the code's SHA-256, the code itself only with includeCode), how it ended
// (exit code, duration, timeout, OOM), what it used, and the security events
// seen. Output is recorded only with includeOutput; secrets are masked in
// everything recorded.
//
// The log goes to standard output or to daily files (audit-YYYY-MM-DD.jsonl,
// UTC) in a folder, where files older than the retention are deleted.
//
//	log, err := audit.New(cfg.Audit)
//	if err != nil { ... }
//	defer log.Close()
//	log.Log(audit.Execution{Request: req, Result: res, TenantID: "acme", KeyID: "k1"})
package audit
