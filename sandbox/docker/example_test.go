package docker_test

import (
	"context"
	"fmt"
	"os"

	"github.com/isol8/isol8/sandbox"
	_ "github.com/isol8/isol8/sandbox/docker" // registers "docker"
)

func Example() {
	ctx := context.Background()
	b, err := sandbox.Open(ctx, "docker", sandbox.Config{Owner: "example"})
	if err != nil {
		fmt.Println(err) // wraps sandbox.ErrUnavailable when the engine is down
		return
	}
	defer b.Close()
	sb, err := b.Create(ctx, sandbox.Spec{
		Image: "isol8:python", MemoryBytes: 512 << 20, CPUs: 1, Pids: 64,
		SandboxSize: 512 << 20, TmpSize: 256 << 20,
		Network: sandbox.NetworkNone, ReadonlyRootFS: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sb.Destroy(ctx)
	_ = sb.WriteFiles(ctx, []sandbox.File{{Path: "/sandbox/main.py", Data: []byte(`print("hi")`)}})
	st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"python3", "main.py"}, Stdout: os.Stdout})
	fmt.Println(st.Code, err)
}
