package docker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// TestFilesDuringExecStarts runs execs and file operations (which freeze
// the sandbox once code has run) on one sandbox at once, as the seam
// allows. A freeze that lands while runc is starting an exec leaves its
// helper frozen in the container's cgroup, and the exec and every later
// call on the container hang in the daemon; the backend must keep the
// two apart. Every operation must finish, and quickly.
func TestFilesDuringExecStarts(t *testing.T) {
	b := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := b.Create(ctx, baseSpec(testImage(t), map[string]string{"dev.isol8.case": "freeze"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Should the daemon be stuck on a frozen exec after all, thaw the
		// cgroup so that the removal (and the rest of the suite) can go on.
		if paths, _ := filepath.Glob("/sys/fs/cgroup/freezer/docker/" + sb.ID() + "*/freezer.state"); len(paths) == 1 {
			_ = os.WriteFile(paths[0], []byte("THAWED"), 0)
		}
		_ = sb.Destroy(context.Background())
	})
	if st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"true"}}); err != nil || st.Code != 0 {
		t.Fatalf("first exec: %v %+v", err, st)
	}

	const rounds = 15
	errs := make(chan error, 4*rounds)
	var wg sync.WaitGroup
	op := func(name string, f func(context.Context) error) {
		defer wg.Done()
		for i := range rounds {
			octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
			err := f(octx)
			ocancel()
			if err != nil {
				errs <- fmt.Errorf("%s %d: %w", name, i, err)
				return
			}
		}
	}
	wg.Add(4)
	for w := range 2 {
		go op(fmt.Sprintf("exec %d", w), func(ctx context.Context) error {
			st, err := sb.Exec(ctx, sandbox.ExecSpec{Argv: []string{"sh", "-c", "echo hi > /dev/null"}})
			if err == nil && st.Code != 0 {
				err = fmt.Errorf("exit %d", st.Code)
			}
			return err
		})
	}
	go op("write", func(ctx context.Context) error {
		return sb.WriteFiles(ctx, []sandbox.File{{Path: "/sandbox/f.txt", Data: []byte("x")}})
	})
	go op("read", func(ctx context.Context) error {
		_, err := sb.ReadFile(ctx, "/sandbox/f.txt", 1<<10)
		if err != nil && !errors.Is(err, sandbox.ErrNotFound) {
			return err
		}
		return nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
