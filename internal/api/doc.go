// Package api is the server of vifsecd's control API: HTTP+JSON over a
// unix socket, versioned under /v2 (README.md in this directory documents
// it for curl --unix-socket users; docs/openapi.json describes it).
//
// The request and response types and the Client are in the public package
// github.com/vifsec/vifsec/api, which imports only the standard library;
// this package names them by aliases (wire.go). It owns the parsing of
// request fields (written as the CLI writes its flags) into the domain
// types of packages sa, tenant and daemon, and the HTTP server that calls
// the daemon.
//
// It must not hold state or enforce rules of consistency between objects:
// the daemon does. Parsing errors name the CLI flag, so the CLI and a curl
// user read the same message. Nothing that a client needs may be added
// here: it goes to the public package.
package api

import wire "github.com/vifsec/vifsec/api"

// Version is the API version, the first element of every path.
const Version = wire.Version
