package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/isol8/isol8"
)

// stdinQueue bounds the stdin messages waiting for the program to read
// them; past it, a message is refused with an error event.
const stdinQueue = 256

// wsMessage is any message a WebSocket client sends.
type wsMessage struct {
	Type string `json:"type"`
	executeBody
	Data   string `json:"data"`
	Signal string `json:"signal"`
	// EOF on a stdin message closes the program's stdin (an extension).
	EOF bool `json:"eof"`
}

// GET /execute/ws runs one execution over a WebSocket (contract section
// 4). The client sends {"type":"execute",...}; then "stdin" messages feed
// the program's standard input and "signal" messages signal it. The
// server sends each event as a text message and closes with 1000 once the
// run has ended (after "exit", or after the "error" event of a run that
// failed). Invalid JSON is an "error" event and close 1003; an unknown
// type, or stdin or a signal with no run, is an "error" event and the
// connection stays open. When request.stdin is set it is the program's
// whole stdin, as upstream; otherwise stdin stays open for stdin messages
// until {"type":"stdin","eof":true} or the end of the run.
func (s *Server) handleExecuteWS(w http.ResponseWriter, r *http.Request) {
	// The upgraded connection outlives the server's read timeout.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	defer conn.CloseNow()
	conn.SetReadLimit(s.maxBody)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ws := &wsConn{s: s, conn: conn, cancel: cancel}
	ws.serve(ctx)
}

type wsConn struct {
	s      *Server
	conn   *websocket.Conn
	cancel context.CancelFunc
}

type wsRead struct {
	typ  websocket.MessageType
	data []byte
	err  error
}

// wsRun is the connection's run, while it goes.
type wsRun struct {
	stdin   chan []byte // nil once closed
	pipe    *io.PipeReader
	signals chan string
	done    chan error
}

// send writes one event; a client that cannot take it within the timeout
// ends the connection (and the run).
func (ws *wsConn) send(ctx context.Context, ev isol8.StreamEvent) {
	data, _ := json.Marshal(ev)
	wctx, cancel := context.WithTimeout(ctx, streamWriteTimeout)
	defer cancel()
	if err := ws.conn.Write(wctx, websocket.MessageText, data); err != nil {
		ws.cancel()
	}
}

func (ws *wsConn) fail(ctx context.Context, msg string) {
	ws.send(ctx, isol8.StreamEvent{Type: isol8.EventError, Data: msg})
}

func (ws *wsConn) serve(ctx context.Context) {
	reads := make(chan wsRead)
	go func() {
		for {
			typ, data, err := ws.conn.Read(ctx)
			select {
			case reads <- wsRead{typ, data, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var run *wsRun
	// finish waits for the run (if any) to end and releases its stdin.
	finish := func() {
		if run != nil {
			<-run.done
			run.end()
		}
	}
	for {
		var done chan error
		if run != nil {
			done = run.done
		}
		select {
		case <-ctx.Done():
			finish()
			return
		case err := <-done:
			run.end()
			if err != nil {
				ws.fail(ctx, publicMessage(err))
			}
			ws.conn.Close(websocket.StatusNormalClosure, "")
			return
		case rd := <-reads:
			if rd.err != nil { // the client closed or went away
				ws.cancel()
				finish()
				return
			}
			if code := ws.handle(ctx, rd, &run); code != 0 {
				// Close before cancelling: a cancelled read would drop
				// the connection without the close frame.
				ws.conn.Close(code, "")
				ws.cancel()
				finish()
				return
			}
		}
	}
}

// handle acts on one client message; a non-zero result closes the
// connection with that status.
func (ws *wsConn) handle(ctx context.Context, rd wsRead, run **wsRun) websocket.StatusCode {
	var msg wsMessage
	if rd.typ != websocket.MessageText || !json.Valid(rd.data) {
		ws.fail(ctx, "invalid message: text messages of JSON are expected")
		return websocket.StatusUnsupportedData
	}
	if err := decodeJSON(rd.data, &msg, false); err != nil {
		if msg.Type == "execute" && *run == nil {
			// A malformed execute is a run that failed at once.
			ws.fail(ctx, publicMessage(err))
			return websocket.StatusNormalClosure
		}
		ws.fail(ctx, publicMessage(err))
		return 0
	}
	switch msg.Type {
	case "execute":
		if *run != nil {
			ws.fail(ctx, "a run is already in progress on this connection")
			return 0
		}
		c, err := msg.executeBody.call()
		if err != nil {
			ws.fail(ctx, publicMessage(err))
			return websocket.StatusNormalClosure
		}
		*run = ws.start(ctx, c)
	case "stdin":
		switch r := *run; {
		case r == nil:
			ws.fail(ctx, "no run in progress")
		case r.stdin == nil:
			ws.fail(ctx, "stdin is closed")
		default:
			if msg.Data != "" {
				select {
				case r.stdin <- []byte(msg.Data):
				default:
					ws.fail(ctx, "stdin is full: the program is not reading it; data dropped")
				}
			}
			if msg.EOF {
				close(r.stdin)
				r.stdin = nil
			}
		}
	case "signal":
		switch msg.Signal {
		case "SIGINT", "SIGTERM", "SIGKILL":
		default:
			ws.fail(ctx, `signal: must be "SIGINT", "SIGTERM" or "SIGKILL"`)
			return 0
		}
		if *run == nil {
			ws.fail(ctx, "no run in progress")
			return 0
		}
		select {
		case (*run).signals <- msg.Signal:
		default:
			ws.fail(ctx, "too many signals pending")
		}
	default:
		ws.fail(ctx, `unknown message type (expected "execute", "stdin" or "signal")`)
	}
	return 0
}

// start runs c in the background with interactive stdin and signals.
func (ws *wsConn) start(ctx context.Context, c *runCall) *wsRun {
	pr, pw := io.Pipe()
	feed := make(chan []byte, stdinQueue)
	r := &wsRun{stdin: feed, pipe: pr, signals: make(chan string, 8), done: make(chan error, 1)}
	if c.req.Stdin != "" {
		// request.stdin is the whole input, as upstream.
		feed <- []byte(c.req.Stdin)
		close(feed)
		r.stdin = nil
	}
	c.req.Stdin = ""
	c.req.StdinReader, c.req.Signals = pr, r.signals
	c.transport = "ws"
	go func() {
		for data := range feed {
			if _, err := pw.Write(data); err != nil {
				break
			}
		}
		pw.Close()
		for range feed { // drain until the run ends and closes it
		}
	}()
	go func() {
		_, err := ws.s.run(ctx, c, func(ev isol8.StreamEvent) { ws.send(ctx, ev) })
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil // the connection is gone; nobody to tell
		}
		r.done <- err
	}()
	return r
}

// end releases a finished run's stdin.
func (r *wsRun) end() {
	r.pipe.CloseWithError(io.ErrClosedPipe)
	if r.stdin != nil {
		close(r.stdin)
		r.stdin = nil
	}
}
