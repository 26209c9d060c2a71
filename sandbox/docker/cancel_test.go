package docker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/isol8/isol8/sandbox"
)

// A caller that gives up while a sandbox is being made (a client that
// disconnects) must not leave a container behind: cancel Create at every
// point of its life and check that nothing of this owner remains.
func TestCreateCancelledLeavesNothing(t *testing.T) {
	b := open(t)
	image := testImage(t)
	for _, after := range []time.Duration{0, 5, 20, 50, 100, 200, 400} {
		ctx, cancel := context.WithTimeout(context.Background(), after*time.Millisecond)
		sb, err := b.Create(ctx, baseSpec(image, nil))
		cancel()
		if err == nil {
			if err := sb.Destroy(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	owner := "isol8-test-" + strings.ReplaceAll(t.Name(), "/", "-") // as open() sets it
	infos, err := b.List(context.Background(), map[string]string{sandbox.LabelOwner: owner})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 0 {
		t.Fatalf("%d sandboxes left after cancelled creates: %+v", len(infos), infos)
	}
}
