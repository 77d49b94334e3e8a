package wire

import (
	"fmt"
	"runtime"
	"strings"
)

// dump prints messages and payloads with their pointed-to values, for
// failure messages.
func dump[T any](vs ...T) string {
	var sb strings.Builder
	for i, v := range vs {
		if i > 0 {
			sb.WriteString(", ")
		}
		switch v := any(v).(type) {
		case *Message:
			if v == nil {
				sb.WriteString("<nil>")
				continue
			}
			fmt.Fprintf(&sb, "{Header:%+v Payloads:%s}", v.Header, dump(v.Payloads...))
		default:
			fmt.Fprintf(&sb, "%+v", v)
		}
	}
	return "[" + sb.String() + "]"
}

// runtimeMem measures bytes allocated by this goroutine's work (the test
// runs alone, so the process counter is good enough).
type runtimeMem struct{ before uint64 }

func (m *runtimeMem) start() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.before = s.TotalAlloc
}

func (m *runtimeMem) bytesSince() uint64 {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	return s.TotalAlloc - m.before
}
