package attach

// uplinkKey is the uplink's entry in lastErr (no VM name starts with NUL).
const uplinkKey = "\x00uplink"

// UplinkStatus says whether the wanted uplink's port is open and, if not,
// why (the device is missing, down, went away). With no uplink wanted it
// returns false and "".
func (a *Attacher) UplinkStatus() (up bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.uplink == nil {
		return false, ""
	}
	if a.up != nil && !a.up.dead.Load() {
		return true, ""
	}
	if e := a.lastErr[uplinkKey]; e != "" {
		return false, e
	}
	if a.up != nil {
		return false, "interface went away"
	}
	return false, "not opened yet"
}
