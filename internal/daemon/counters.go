package daemon

import "github.com/vifsec/vifsec/internal/counters"

// VMCounters are one VM's traffic statistics: the data path's own counters
// (counters.VMStats), which it updates with atomic adds (no lock, no
// allocation) and metrics and `vifsec stats` read at scrape time. In and
// Out are seen from the VM: Out is what it sends. They live as long as the
// VM is attached and start at zero when the daemon starts.
type VMCounters = counters.VMStats
