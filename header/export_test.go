package header

// The packet builders of ipv6ext_test.go, for the external tests.
var (
	TestV6    = v6
	TestExt   = ext
	TestFrag  = frag
	TestChain = chain
)
