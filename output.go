package isol8

import (
	"bytes"
	"fmt"
	"sort"
	"sync"
	"unicode/utf8"
)

// outputStream is the engine side of one of a run's stdout or stderr. It
// masks secrets (also when a secret arrives in two writes), keeps at most
// max bytes cut on a UTF-8 boundary, and forwards what it keeps to the
// event sink as it arrives. Its memory is bounded by max plus the longest
// secret, whatever the program writes.
type outputStream struct {
	mu        sync.Mutex
	typ       EventType
	phase     Phase
	secrets   [][]byte
	longest   int
	max       int64
	kept      bytes.Buffer
	total     int64
	truncated bool
	pending   []byte
	sink      EventSink
	closed    bool
}

func newOutputStream(typ EventType, max int64, secrets map[string]string, sink EventSink) *outputStream {
	s := &outputStream{typ: typ, max: max, sink: sink, phase: PhaseCode}
	for _, v := range secrets {
		if v != "" {
			s.secrets = append(s.secrets, []byte(v))
		}
	}
	// Longest first, so a secret that contains another is masked whole.
	sort.Slice(s.secrets, func(i, j int) bool { return len(s.secrets[i]) > len(s.secrets[j]) })
	if len(s.secrets) > 0 {
		s.longest = len(s.secrets[0])
	}
	return s
}

var mask = []byte("***")

// Write implements io.Writer; it never fails, so a chatty program is never
// blocked by the engine, only cut.
func (s *outputStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return len(p), nil
	}
	s.pending = append(s.pending, p...)
	s.pending = s.maskAll(s.pending)
	hold := s.holdBack(s.pending)
	out := s.pending[:len(s.pending)-hold]
	s.emit(out)
	s.pending = append(s.pending[:0], s.pending[len(s.pending)-hold:]...)
	return len(p), nil
}

func (s *outputStream) maskAll(b []byte) []byte {
	for _, sec := range s.secrets {
		if bytes.Contains(b, sec) {
			b = bytes.ReplaceAll(b, sec, mask)
		}
	}
	return b
}

// holdBack returns how many trailing bytes must wait for more input: the
// longest suffix that could start a secret, or an incomplete UTF-8 rune.
func (s *outputStream) holdBack(b []byte) int {
	hold := 0
	for n := min(len(b), s.longest-1); n > 0; n-- {
		suffix := b[len(b)-n:]
		for _, sec := range s.secrets {
			if bytes.HasPrefix(sec, suffix) {
				hold = n
				break
			}
		}
		if hold > 0 {
			break
		}
	}
	// An incomplete rune at the end: at most 3 bytes.
	for n := 1; n <= 3 && n <= len(b)-hold; n++ {
		c := b[len(b)-hold-n]
		if c < 0x80 {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-hold-n : len(b)-hold]) {
				hold += n
			}
			break
		}
	}
	return hold
}

func (s *outputStream) emit(out []byte) {
	if len(out) == 0 {
		return
	}
	room := s.max - s.total
	s.total += int64(len(out))
	if room <= 0 {
		s.truncated = true
		return
	}
	keep := out
	if int64(len(out)) > room {
		s.truncated = true
		keep = out[:room]
		// Cut on a rune boundary: drop a trailing partial rune.
		for i := len(keep) - 1; i >= 0 && i >= len(keep)-3; i-- {
			if utf8.RuneStart(keep[i]) {
				if !utf8.FullRune(keep[i:]) {
					keep = keep[:i]
				}
				break
			}
		}
	}
	s.kept.Write(keep)
	if s.sink != nil && len(keep) > 0 {
		s.sink(StreamEvent{Type: s.typ, Data: string(keep), Phase: s.phase})
	}
}

// setPhase labels the events that follow.
func (s *outputStream) setPhase(p Phase) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

// close flushes held bytes and, when the stream was cut, ends it with a
// line that says how much there was and what the limit is.
func (s *outputStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.emit(s.maskAll(s.pending))
	s.pending = nil
	s.closed = true
	if s.truncated {
		note := fmt.Sprintf("\n[isol8: %s truncated: %d bytes written, limit %d bytes]\n", s.typ, s.total, s.max)
		s.kept.WriteString(note)
		if s.sink != nil {
			s.sink(StreamEvent{Type: s.typ, Data: note, Phase: s.phase})
		}
	}
}

// appendNote adds an engine message (such as the timeout notice) to the
// stream, past the limit if need be.
func (s *outputStream) appendNote(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kept.WriteString(msg)
	if s.sink != nil {
		s.sink(StreamEvent{Type: s.typ, Data: msg, Phase: s.phase})
	}
}

func (s *outputStream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kept.String()
}
