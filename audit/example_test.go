package audit_test

import (
	"fmt"
	"io"

	"github.com/isol8/isol8"
	"github.com/isol8/isol8/audit"
)

// A record names the key's id, never the key; the code appears only as
// its hash unless includeCode is set, and secrets are masked everywhere.
func ExampleLogger_Record() {
	log := audit.NewWriter(io.Discard, isol8.AuditConfig{Enabled: true, IncludeCode: true})
	rec := log.Record(audit.Execution{
		Request:  &isol8.Request{Runtime: isol8.Python, Code: "print('s3cret')"},
		Result:   &isol8.Result{ExecutionID: "e1", ExitCode: 0, DurationMs: 40},
		TenantID: "acme", KeyID: "key-1",
		Secrets: map[string]string{"TOKEN": "s3cret"},
	})
	fmt.Println(rec.KeyID, rec.Outcome, *rec.ExitCode, rec.Code)
	fmt.Println(rec.CodeHash[:16])
	// Output:
	// key-1 ok 0 print('***')
	// 75c6cc6dd5cc7da5
}
