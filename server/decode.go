package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/isol8/isol8"
)

const (
	// maxDepth bounds JSON nesting; no body of this API needs more than 4.
	maxDepth = 32
	// maxEntries bounds the entries of any map while it is decoded, so a
	// body of a million tiny entries costs little; the request's own
	// limits (1000 files, 256 env vars) are checked by Request.Validate.
	maxEntries = 10_000
)

// idRE is the shape of session ids, tenant ids and request ids.
var idRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func invalid(field, format string, args ...any) error {
	return &isol8.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// decodeBody reads a JSON body of at most the server's limit into v. An
// empty body is an error unless allowEmpty. Errors name the field.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	if r.ContentLength > s.maxBody {
		// Refuse before reading a byte, and do not drain it either.
		w.Header().Set("Connection", "close")
		return &http.MaxBytesError{Limit: s.maxBody}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return invalid("body", "could not be read: %v", err)
	}
	return decodeJSON(data, v, allowEmpty)
}

// decodeJSON decodes one JSON document into v, after checking its depth.
func decodeJSON(data []byte, v any, allowEmpty bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			return nil
		}
		return invalid("body", "empty; a JSON object is required")
	}
	if err := checkDepth(data, maxDepth); err != nil {
		return err
	}
	return jsonError(json.Unmarshal(data, v))
}

// checkDepth refuses JSON nested deeper than max, in one pass and before
// anything is allocated for it.
func checkDepth(data []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return invalid("body", "JSON nested deeper than %d levels", max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// jsonError turns a decoding error into a FieldError naming the field.
func jsonError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		field  *isol8.FieldError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &field):
		return field
	case errors.As(err, &syntax):
		return invalid("body", "not valid JSON (at byte %d): %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		name := jsonPath(typ.Field)
		if reason, ok := entryReasons[typ.Type]; ok {
			if typ.Value != "" {
				name += fmt.Sprintf("[%q]", typ.Value)
			}
			return invalid(name, "%s", reason)
		}
		if name == "" {
			name = "body"
		}
		return invalid(name, "expected %s, got %s", kindName(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("body", "truncated JSON")
	}
	return invalid("body", "%v", err)
}

// embeddedNames are the Go names of the structs the wire types embed;
// encoding/json puts them in an error's path, where a client would not
// expect them ("request.Request.timeoutMs").
var embeddedNames = map[string]bool{}

func init() {
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				embeddedNames[f.Name] = true
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[wsMessage]())
}

// jsonPath is a decoding error's field path as the client wrote it.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if !embeddedNames[p] {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ".")
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer (without exponent, in range)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// executeBody is the body of /execute and /execute/stream, and the
// payload of a WebSocket "execute" message.
type executeBody struct {
	Request   *wireRequest `json:"request"`
	Options   *wireOptions `json:"options"`
	SessionID string       `json:"sessionId"`
}

// wireRequest is a Request as JSON carries it: file contents in base64,
// and maps bounded while they are decoded.
type wireRequest struct {
	isol8.Request
	Files    fileMap   `json:"files"`
	Env      stringMap `json:"env"`
	Metadata stringMap `json:"metadata"`
}

type wireOptions struct {
	isol8.Options
	Secrets stringMap `json:"secrets"`
}

// call checks the body's shape and returns the run it asks for.
func (b *executeBody) call() (*runCall, error) {
	if b.Request == nil {
		return nil, invalid("request", "required")
	}
	if b.SessionID != "" && !idRE.MatchString(b.SessionID) {
		return nil, invalid("sessionId", "must be 1 to 128 letters, digits or ._:-")
	}
	req := b.Request.Request
	req.Files, req.Env, req.Metadata = b.Request.Files, b.Request.Env, b.Request.Metadata
	c := &runCall{req: &req, sessionID: b.SessionID}
	if b.Options != nil {
		c.opts = b.Options.Options
		c.opts.Secrets = b.Options.Secrets
	}
	return c, nil
}

// Bad map entries are reported through encoding/json as an
// UnmarshalTypeError whose Type is one of these markers and whose Value is
// the entry's key; json fills in the map's path (Field), and jsonError
// renders it as `request.env["K"]: must be a string`.
type (
	notString struct{}
	notBase64 struct{}
	tooMany   struct{}
)

var entryReasons = map[reflect.Type]string{
	reflect.TypeFor[notString](): "must be a string",
	reflect.TypeFor[notBase64](): "not valid base64",
	reflect.TypeFor[tooMany]():   fmt.Sprintf("more than %d entries", maxEntries),
}

func entryError[T any](key string) error {
	return &json.UnmarshalTypeError{Value: key, Type: reflect.TypeFor[T]()}
}

// stringMap is a JSON object of strings with at most maxEntries entries.
type stringMap map[string]string

func (m *stringMap) UnmarshalJSON(data []byte) error {
	*m = nil
	return eachEntry(data, func(k string, v json.RawMessage) error {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return entryError[notString](k)
		}
		if *m == nil {
			*m = stringMap{}
		}
		(*m)[k] = s
		return nil
	})
}

// fileMap is the "files" object: path to base64 content.
type fileMap map[string][]byte

func (m *fileMap) UnmarshalJSON(data []byte) error {
	*m = nil
	return eachEntry(data, func(k string, v json.RawMessage) error {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return entryError[notString](k)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
				return entryError[notBase64](k)
			}
		}
		if *m == nil {
			*m = fileMap{}
		}
		(*m)[k] = b
		return nil
	})
}

// eachEntry walks a JSON object (or null) entry by entry, stopping past
// maxEntries. The data was already checked by the outer decoder.
func eachEntry(data []byte, fn func(k string, v json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if tok != json.Delim('{') {
		return &json.UnmarshalTypeError{Value: "non-object", Type: reflect.TypeFor[map[string]string]()}
	}
	for n := 0; dec.More(); n++ {
		if n == maxEntries {
			return entryError[tooMany]("")
		}
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if err := fn(kt.(string), v); err != nil {
			return err
		}
	}
	return nil
}
