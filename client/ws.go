package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/isol8/isol8"
)

// wsMessage is a message this client sends once the run is under way:
// {"type":"stdin","data":...}, {"type":"stdin","eof":true} (the end of
// stdin, an extension of this project's server) or {"type":"signal",...}.
type wsMessage struct {
	Type   string `json:"type"`
	Data   string `json:"data,omitempty"`
	EOF    bool   `json:"eof,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// wsExecute is the first message, {"type":"execute",...}.
type wsExecute struct {
	Type string `json:"type"`
	executeBody
}

// stdinChunk is how much of StdinReader one message carries at most: even
// escaped six-fold as JSON it fits a peer's default 32 KiB message limit.
const stdinChunk = 4 << 10

// streamWS runs req over GET /execute/ws. errNoWebSocket means the server
// would not upgrade and SSE should be tried.
func (r *Remote) streamWS(ctx context.Context, req *isol8.Request, c *collector) error {
	hdr := http.Header{}
	if r.key != "" {
		hdr.Set("Authorization", "Bearer "+r.key)
	}
	conn, resp, err := websocket.Dial(ctx, r.base+"/execute/ws", &websocket.DialOptions{HTTPClient: r.hc, HTTPHeader: hdr})
	if err != nil {
		if ctx.Err() != nil {
			return r.transportError(ctx, err)
		}
		if resp == nil {
			return r.transportError(ctx, err) // the server cannot be reached at all
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable:
			// SSE would be refused the same way.
			return responseError(resp)
		}
		return fmt.Errorf("%w: %w", errNoWebSocket, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxEvent)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	wire := *req
	interactive := req.StdinReader != nil
	if interactive {
		wire.Stdin = "" // StdinReader wins, as with the local engine
	}
	first, err := json.Marshal(wsExecute{Type: "execute", executeBody: r.body(&wire)})
	if err != nil {
		return fmt.Errorf("%w: encoding the request: %w", isol8.ErrInvalidArgument, err)
	}
	if err := conn.Write(ctx, websocket.MessageText, first); err != nil {
		return r.wsError(ctx, c, err)
	}
	switch {
	case interactive:
		go pumpStdin(ctx, conn, req.StdinReader)
	case wire.Stdin == "":
		// Without stdin the server would keep the program's stdin open for
		// messages; the local engine gives it an empty one.
		if err := send(ctx, conn, wsMessage{Type: "stdin", EOF: true}); err != nil {
			return r.wsError(ctx, c, err)
		}
	}
	if req.Signals != nil {
		go pumpSignals(ctx, conn, req.Signals)
	}
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return r.wsError(ctx, c, err)
		}
		if typ != websocket.MessageText {
			continue
		}
		var ev isol8.StreamEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("%w: isol8 server at %s: bad event %.100q: %w", isol8.ErrUnavailable, r.base, data, err)
		}
		if err := c.event(ev); err != nil {
			return err
		}
		if ev.Type == isol8.EventExit {
			conn.Close(websocket.StatusNormalClosure, "") // the server closes too
			return nil
		}
	}
}

// wsError classifies the end of a WebSocket read or write: a normal close
// lets the collector decide (exit seen, or the server's error event).
func (r *Remote) wsError(ctx context.Context, c *collector, err error) error {
	switch {
	case websocket.CloseStatus(err) == websocket.StatusNormalClosure, c.exited():
		return nil
	case ctx.Err() != nil:
		return r.transportError(ctx, err)
	case websocket.CloseStatus(err) != -1:
		return fmt.Errorf("%w: isol8 server at %s closed the stream: %w", isol8.ErrUnavailable, r.base, err)
	case errors.Is(err, io.EOF):
		return nil // gone without a close frame; the collector decides
	}
	return r.transportError(ctx, err)
}

func send(ctx context.Context, conn *websocket.Conn, m wsMessage) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageText, data)
}

// pumpStdin forwards rd as stdin messages, then the end of stdin. A read
// that blocks (a terminal) outlives the run until it returns.
func pumpStdin(ctx context.Context, conn *websocket.Conn, rd io.Reader) {
	buf := make([]byte, stdinChunk)
	var carry []byte // the start of a character cut by the chunk's end
	for {
		n, err := rd.Read(buf[len(carry):])
		if n > 0 {
			chunk, rest := splitUTF8(buf[:len(carry)+n])
			if len(chunk) > 0 && send(ctx, conn, wsMessage{Type: "stdin", Data: string(chunk)}) != nil {
				return
			}
			carry = append(carry[:0], rest...)
			copy(buf, carry)
		}
		if err != nil {
			if len(carry) > 0 && send(ctx, conn, wsMessage{Type: "stdin", Data: string(carry)}) != nil {
				return
			}
			send(ctx, conn, wsMessage{Type: "stdin", EOF: true})
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// splitUTF8 cuts b before a character whose bytes it does not all hold.
func splitUTF8(b []byte) (whole, rest []byte) {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i], b[i:]
			}
			break
		}
	}
	return b, nil
}

// pumpSignals forwards signals as signal messages until the run ends.
func pumpSignals(ctx context.Context, conn *websocket.Conn, signals <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig, ok := <-signals:
			if !ok || send(ctx, conn, wsMessage{Type: "signal", Signal: sig}) != nil {
				return
			}
		}
	}
}
