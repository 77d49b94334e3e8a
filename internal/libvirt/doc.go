// Package libvirt is vifsec's side of libvirt: it reads a domain's XML
// (vifsec's <vifsec:vm> metadata element and the domain's <interface>
// elements) and turns it into the VM bindings the daemon attaches; it
// installs the qemu hook file; it holds a small read-only client of
// libvirt's RPC protocol, and the reconciliation that compares the domains
// libvirt runs with the VMs the hook attached.
//
// The hook (cmd/vifsec-hook) uses only the XML side: a libvirt hook must
// never call back into libvirt, which waits for it. The RPC client is for
// the daemon's periodic reconciliation, which runs outside any hook.
// It is vifsec's own rather than github.com/digitalocean/go-libvirt, which
// cannot ask for a read-only connection and does not bound the messages
// it reads (the README's libvirt section gives the measurements): this
// one sends VIR_CONNECT_RO, bounds every length it reads before
// allocating, and ends each call when its context does.
//
// It must not hold daemon state or validate VM fields beyond what the XML
// says: the daemon does.
package libvirt
