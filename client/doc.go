// Package client is the Go client of an isol8 server. Remote implements
// isol8.Engine over the HTTP API, so code written against the local engine
// runs remotely by changing one constructor:
//
//	eng, err := client.New(client.Options{Host: "http://localhost:3000", APIKey: key}, isol8.Options{})
//	...
//	res, err := eng.Execute(ctx, &isol8.Request{Runtime: isol8.Python, Code: "print(1)"})
//
// Errors the server reports come back as *Error, which wraps the library's
// error class of the HTTP status (ErrInvalidArgument, ErrPermission,
// ErrNotFound, ...) and keeps the server's message; a server that cannot
// be reached is ErrUnavailable.
//
// Streams use a WebSocket, which also carries stdin and signals, and fall
// back to server-sent events when the server (or a proxy) refuses the
// upgrade.
package client
