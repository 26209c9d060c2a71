package isol8

import (
	"context"
	"testing"
	"time"
)

// The line end to end through Execute: installPackages ["lodash"]
// for node installs from the real npm registry through the run's egress
// proxy, the code uses it, and the proxy's log shows the registry request.
func TestExecuteInstallsLodashThroughProxy(t *testing.T) {
	dockerBackend(t)
	cfg := machineConfig(t, Node)
	e, err := New(EngineConfig{Config: cfg, Owner: "test-install-engine-" + time.Now().Format("150405.000"),
		// The stock image, named: an image with lodash baked in (from other
		// tests) would otherwise be picked and nothing installed.
		Options: Options{Image: "isol8:node", Network: NetworkFiltered, LogNetwork: ptr(true), TimeoutMs: 240000, PoolSize: &PoolSize{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	defer e.Stop(context.Background())
	res, err := e.Execute(ctx, &Request{
		Runtime:         Node,
		Code:            `import _ from "lodash"; console.log(_.chunk(["a", "b", "c", "d"], 2).map(p => p.join("")).join(","))`,
		InstallPackages: []string{"lodash"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Stdout != "ab,cd\n" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	allowed := 0
	for _, l := range res.NetworkLogs {
		if l.Action == "ALLOW" {
			allowed++
		}
	}
	if allowed == 0 {
		t.Fatalf("no request went through the proxy: %+v", res.NetworkLogs)
	}

	// A bad name: refused before any sandbox, naming the entry.
	_, err = e.Execute(ctx, &Request{Runtime: Node, Code: "1", InstallPackages: []string{"--registry=http://evil.test"}})
	if err == nil {
		t.Fatal("an option as a package name was accepted")
	}
	t.Logf("refused: %v", err)
}
