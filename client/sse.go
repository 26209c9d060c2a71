package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/isol8/isol8"
)

// streamSSE runs req over POST /execute/stream.
func (r *Remote) streamSSE(ctx context.Context, req *isol8.Request, c *collector) error {
	ctx, wire, done, err := r.plain(ctx, req)
	if err != nil {
		return err
	}
	defer done()
	hr, err := r.newRequest(ctx, http.MethodPost, "/execute/stream", nil, r.body(wire))
	if err != nil {
		return err
	}
	hr.Header.Set("Accept", "text/event-stream")
	resp, err := r.send(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("%w: isol8 server at %s: POST /execute/stream answered %q, not an event stream",
			isol8.ErrUnavailable, r.base, resp.Header.Get("Content-Type"))
	}
	events := newSSEReader(resp.Body, maxEvent)
	for {
		data, err := events.next()
		if errors.Is(err, io.EOF) {
			return nil // the collector tells a finished run from a cut one
		}
		if err != nil {
			if ctx.Err() != nil {
				return r.transportError(ctx, err)
			}
			return fmt.Errorf("%w: isol8 server at %s: event stream: %w", isol8.ErrUnavailable, r.base, err)
		}
		var ev isol8.StreamEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("%w: isol8 server at %s: bad event %.100q: %w", isol8.ErrUnavailable, r.base, data, err)
		}
		if err := c.event(ev); err != nil {
			return err
		}
		if ev.Type == isol8.EventExit {
			return nil
		}
	}
}

// sseReader reads the data of server-sent events (the WHATWG event-stream
// format): "data:" lines, joined by newlines, make one event, dispatched
// at a blank line; comments and other fields are skipped. Lines end in
// LF or CRLF.
type sseReader struct {
	br  *bufio.Reader
	max int
}

func newSSEReader(rd io.Reader, max int) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(rd, 64<<10), max: max}
}

// next returns the data of the next event; io.EOF at the end of the
// stream (an event cut off by the end is dropped, as the format says).
func (s *sseReader) next() ([]byte, error) {
	var data []byte
	has := false
	for {
		line, err := s.line()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			if has {
				return data, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // a comment (keep-alive)
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue // event, id, retry: nothing isol8 sends or needs
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if has {
			data = append(data, '\n')
		}
		data, has = append(data, value...), true
		if len(data) > s.max {
			return nil, fmt.Errorf("an event is longer than %d bytes", s.max)
		}
	}
}

// line returns the next line without its ending.
func (s *sseReader) line() ([]byte, error) {
	var line []byte
	for {
		chunk, err := s.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > s.max+2 {
			return nil, fmt.Errorf("a line is longer than %d bytes", s.max)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF // a line without its end is cut off
			}
			return nil, err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		return line, nil
	}
}
