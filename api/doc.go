// Package api is the client side of vifsecd's control API: the wire types
// of HTTP+JSON over a unix socket, versioned under /v2, and Client, which
// cmd/vifsec, the libvirt hook and any program that drives vifsecd use.
// docs/openapi.json describes the API; internal/api/README.md explains it
// for curl --unix-socket users.
//
// It owns the request and response types and how they travel (JSON field
// names, the error body and its codes, the socket).
//
// It must not import anything but the standard library: a client never
// links its server (the hook runs at every domain start and must start
// fast). The server, and the parsing of requests into the daemon's
// domain types, are in internal/api.
package api

// Version is the API version, the first element of every path.
const Version = "v2"
