package vif

// LinkEvent says an interface appeared, changed or disappeared.
type LinkEvent struct {
	Netns string // as given to WatchLinks
	Name  string
	Index int
	Gone  bool // RTM_DELLINK
	Up    bool
}
