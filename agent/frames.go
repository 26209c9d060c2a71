package agent

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// Frame kinds. Host to agent: a job, a reset, a kernel stop. Agent to
// host: hello (ready), stdout and stderr chunks, the phase change after a
// setup script, one output file, the job's exit, a reply to a reset or
// kernel stop that did not end in a hello.
const (
	kindJob        = 'J'
	kindReset      = 'R'
	kindStopKernel = 'K'

	kindHello  = 'H'
	kindStdout = 'o'
	kindStderr = 'e'
	kindPhase  = 'p'
	kindFile   = 'f'
	kindExit   = 'x'
	kindReply  = 'r'
)

// A frame is a kind byte, a big-endian uint32 length and the payload.
const headerSize = 5

// Bounds on what the agent may send: output arrives in chunks of 64 KiB,
// a file frame carries one output file in base64 (maxFileFrame covers the
// engine's 64 MiB cap), and everything else is a little JSON.
const (
	maxChunkFrame = 1 << 20
	maxFileFrame  = 100 << 20
)

type frame struct {
	kind byte
	data []byte
	buf  *[chunkBuf]byte // data's pooled buffer, for output chunks
}

func writeFrame(w io.Writer, kind byte, payload []byte) error {
	buf := make([]byte, headerSize+len(payload))
	buf[0] = kind
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[headerSize:], payload)
	_, err := w.Write(buf)
	return err
}

// chunks recycles the buffers of output frames: a job that floods stdout
// must not turn into garbage the host's heap grows with (security case:
// 100 MB of output costs about maxOutputSize).
var chunks = sync.Pool{New: func() any { return new([chunkBuf]byte) }}

const chunkBuf = 64 << 10 // the agents send at most this much per chunk

// release gives an output frame's buffer back once it has been written.
func (f frame) release() {
	if f.buf != nil {
		chunks.Put(f.buf)
	}
}

// readFrame reads one frame, refusing one larger than its kind allows, so
// that an agent a job has tampered with cannot make the host allocate
// without bound.
func readFrame(r io.Reader) (frame, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	limit := uint32(maxChunkFrame)
	if hdr[0] == kindFile {
		limit = maxFileFrame
	}
	if n > limit {
		return frame{}, fmt.Errorf("agent frame %q of %d bytes exceeds %d", hdr[0], n, limit)
	}
	f := frame{kind: hdr[0]}
	if (f.kind == kindStdout || f.kind == kindStderr) && n <= chunkBuf {
		f.buf = chunks.Get().(*[chunkBuf]byte)
		f.data = f.buf[:n]
	} else {
		f.data = make([]byte, n)
	}
	if _, err := io.ReadFull(r, f.data); err != nil {
		f.release()
		return frame{}, fmt.Errorf("agent frame %q: %w", hdr[0], err)
	}
	return f, nil
}
