//go:build linux

package nsinit

import (
	"encoding/binary"
	"errors"
)

// The messages are encoded by hand, not with encoding/json: importing it
// (and the packages it needs) would delay this package's init by dozens of
// packages in the engine's binary, which is the whole point of keeping
// this package small. The format: unsigned varints, and byte strings as a
// varint length and the bytes, in field order.

// Message is what Send and Recv carry.
type Message interface {
	encode(e *encoder)
	decode(d *decoder)
}

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) bytes(v []byte) {
	e.uint(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) string(v string) {
	e.uint(uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) strings(v []string) {
	e.uint(uint64(len(v)))
	for _, s := range v {
		e.string(s)
	}
}
func (e *encoder) bool(v bool) {
	if v {
		e.uint(1)
	} else {
		e.uint(0)
	}
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("message too short")

func (d *decoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = errShort, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = errShort, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.err, d.b = errShort, nil
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) strings() []string {
	n := d.uint()
	if n > uint64(len(d.b)) { // each string takes at least a byte
		d.err, d.b = errShort, nil
		return nil
	}
	var v []string
	for i := uint64(0); i < n && d.err == nil; i++ {
		v = append(v, d.string())
	}
	return v
}

func (d *decoder) bool() bool { return d.uint() != 0 }

// Marshal encodes m.
func Marshal(m Message) []byte {
	var e encoder
	m.encode(&e)
	return e.b
}

// Unmarshal decodes b into m.
func Unmarshal(b []byte, m Message) error {
	d := decoder{b: b}
	m.decode(&d)
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes in message")
	}
	return d.err
}

func (c *Config) encode(e *encoder) {
	e.string(c.Rootfs)
	e.bool(c.Readonly)
	e.int(c.SandboxSize)
	e.int(c.TmpSize)
	e.int(c.ShmSize)
	e.string(c.Hostname)
	e.bool(c.NewNet)
	e.bytes(c.Seccomp)
	e.int(int64(c.UID))
	e.int(int64(c.GID))
	e.int(int64(c.TaskFDs))
	e.bool(c.ProcsFD)
}

func (c *Config) decode(d *decoder) {
	c.Rootfs = d.string()
	c.Readonly = d.bool()
	c.SandboxSize = d.int()
	c.TmpSize = d.int()
	c.ShmSize = d.int()
	c.Hostname = d.string()
	c.NewNet = d.bool()
	c.Seccomp = d.bytes()
	c.UID = int(d.int())
	c.GID = int(d.int())
	c.TaskFDs = int(d.int())
	c.ProcsFD = d.bool()
}

func (r *Request) encode(e *encoder) {
	e.string(r.Op)
	e.uint(r.ID)
	e.strings(r.Argv)
	e.strings(r.Env)
	e.string(r.Dir)
	e.int(int64(r.Signal))
	e.bool(r.Group)
}

func (r *Request) decode(d *decoder) {
	r.Op = d.string()
	r.ID = d.uint()
	r.Argv = d.strings()
	r.Env = d.strings()
	r.Dir = d.string()
	r.Signal = int(d.int())
	r.Group = d.bool()
}

func (r *Reply) encode(e *encoder) {
	e.string(r.Op)
	e.uint(r.ID)
	e.int(int64(r.Pid))
	e.int(int64(r.Code))
	e.string(r.Err)
}

func (r *Reply) decode(d *decoder) {
	r.Op = d.string()
	r.ID = d.uint()
	r.Pid = int(d.int())
	r.Code = int(d.int())
	r.Err = d.string()
}

func (r *SpawnRequest) encode(e *encoder) {
	e.uint(r.ID)
	e.uint(uint64(r.Cloneflags))
	e.int(int64(r.HostID))
	e.int(int64(r.IDs))
}

func (r *SpawnRequest) decode(d *decoder) {
	r.ID = d.uint()
	r.Cloneflags = uintptr(d.uint())
	r.HostID = int(d.int())
	r.IDs = int(d.int())
}

func (r *SpawnReply) encode(e *encoder) {
	e.uint(r.ID)
	e.int(int64(r.Pid))
	e.string(r.Err)
}

func (r *SpawnReply) decode(d *decoder) {
	r.ID = d.uint()
	r.Pid = int(d.int())
	r.Err = d.string()
}
