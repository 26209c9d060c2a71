package isol8

import (
	"strings"
	"testing"
)

func TestOutputMasksSecretSplitAcrossWrites(t *testing.T) {
	var events []string
	s := newOutputStream(EventStdout, 1<<20, map[string]string{"TOKEN": "s3cr3t-value"}, func(ev StreamEvent) { events = append(events, ev.Data) })
	for _, chunk := range []string{"key=s3cr", "3t-val", "ue done\n", "again s3cr3t-value\n"} {
		s.Write([]byte(chunk))
	}
	s.close()
	got := s.String()
	if strings.Contains(got, "s3cr") || strings.Count(got, "***") != 2 {
		t.Fatalf("result not masked: %q", got)
	}
	joined := strings.Join(events, "")
	if joined != got || strings.Contains(joined, "s3cr") {
		t.Fatalf("streamed chunks leak or differ: %q vs %q", joined, got)
	}
}

func TestOutputTruncatesOnRuneBoundary(t *testing.T) {
	s := newOutputStream(EventStdout, 5, nil, nil)
	s.Write([]byte("abcé")) // é is 2 bytes: 5 bytes total, fits
	s.Write([]byte("€€€"))  // over the limit
	s.close()
	if !s.truncated {
		t.Fatal("not truncated")
	}
	kept, _, _ := strings.Cut(s.String(), "\n[isol8")
	if kept != "abcé" {
		t.Fatalf("kept %q", kept)
	}
	if !strings.Contains(s.String(), "14 bytes written, limit 5 bytes") {
		t.Fatalf("no truncation note: %q", s.String())
	}
}

func TestOutputHoldsIncompleteRune(t *testing.T) {
	var events []string
	s := newOutputStream(EventStdout, 100, nil, func(ev StreamEvent) { events = append(events, ev.Data) })
	b := []byte("x€y")
	s.Write(b[:2])
	s.Write(b[2:])
	s.close()
	for _, ev := range events {
		if !strings.HasPrefix(ev, "x") && !strings.HasPrefix(ev, "€") {
			t.Fatalf("event split a rune: %q", events)
		}
	}
	if s.String() != "x€y" {
		t.Fatalf("got %q", s.String())
	}
}

func TestOutputBoundedMemory(t *testing.T) {
	s := newOutputStream(EventStdout, 1<<10, nil, nil)
	chunk := []byte(strings.Repeat("y\n", 16<<10))
	for i := 0; i < 1000; i++ {
		s.Write(chunk)
	}
	if s.kept.Cap() > 64<<10 || len(s.pending) > 0 {
		t.Fatalf("kept buffer grew to %d", s.kept.Cap())
	}
}
