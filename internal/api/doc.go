// Package api is the vifsecd control API: HTTP+JSON over a unix socket,
// versioned under /v1 (README.md in this directory documents it for
// curl --unix-socket users).
//
// It owns the request and response types, the parsing of request fields
// (written as the CLI writes its flags) into the domain types of packages
// sa, tenant and daemon, the HTTP server that calls the daemon, and the
// Client that cmd/vifsec and the libvirt hook use.
//
// It must not hold state or enforce rules of consistency between objects:
// the daemon does. Parsing errors name the CLI flag, so the CLI and a curl
// user read the same message.
package api

// Version is the API version, the first element of every path.
const Version = "v1"
