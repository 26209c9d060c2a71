//go:build linux

package nsinit

import (
	"reflect"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	msgs := []struct{ in, out Message }{
		{&Config{Rootfs: "/r", Readonly: true, SandboxSize: 1 << 40, TmpSize: -1, ShmSize: 3,
			Hostname: "h", NewNet: true, Seccomp: []byte{0, 1, 2}, UID: 1000, GID: 1000, TaskFDs: 4, ProcsFD: true}, &Config{}},
		{&Request{Op: OpExec, ID: 1<<64 - 1, Argv: []string{"a b", "", "$(x)"}, Env: []string{"A=1", "B="},
			Dir: "/sandbox", Signal: 15, Group: true}, &Request{}},
		{&Reply{Op: OpExit, ID: 7, Pid: -1, Code: 137, Err: "x"}, &Reply{}},
		{&SpawnRequest{ID: 3, Cloneflags: 0x7e020000, HostID: 1e9, IDs: 65536}, &SpawnRequest{}},
		{&SpawnReply{ID: 3, Pid: 42}, &SpawnReply{}},
	}
	for _, m := range msgs {
		if err := Unmarshal(Marshal(m.in), m.out); err != nil {
			t.Fatalf("%T: %v", m.in, err)
		}
		if !reflect.DeepEqual(m.in, m.out) {
			t.Errorf("%T: got %+v, want %+v", m.in, m.out, m.in)
		}
	}
}

func TestCodecRejectsGarbage(t *testing.T) {
	full := Marshal(&Request{Op: OpExec, Argv: []string{"python3", "-c", "print(1)"}})
	for n := range len(full) {
		if err := Unmarshal(full[:n], &Request{}); err == nil {
			t.Errorf("a request cut to %d of %d bytes decoded", n, len(full))
		}
	}
	if err := Unmarshal(append(full, 0), &Request{}); err == nil {
		t.Error("trailing bytes accepted")
	}
	// A count far beyond the message must not allocate or loop.
	if err := Unmarshal([]byte{4, 'e', 'x', 'e', 'c', 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, &Request{}); err == nil {
		t.Error("a huge argv count decoded")
	}
}
