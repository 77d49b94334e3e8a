package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIErrorsForAutomation: each refusal has its exit status, and with
// --format json the error is one JSON object on stdout, with the API's
// stable code, and nothing on stderr.
func TestCLIErrorsForAutomation(t *testing.T) {
	r := newCLIRig(t)
	r.ok("", "tenant", "add", "--tenant", "t1", "--vni", "5001")
	tests := []struct {
		name string
		args []string
		exit int
		code string
		flag string
	}{
		{"invalid", []string{"tenant", "add", "--tenant", "t2", "--vni", "x"}, exitRejected, "invalid", "--vni"},
		{"exists", []string{"tenant", "add", "--tenant", "t1", "--vni", "5002"}, exitExists, "exists", "--tenant"},
		{"not found", []string{"tenant", "remove", "--tenant", "nosuch"}, exitNotFound, "not_found", "--tenant"},
		{"not found sa", []string{"sa", "remove", "--sa-name", "nosuch"}, exitNotFound, "not_found", "--sa-name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := r.vifsec("", tt.args...)
			if code != tt.exit || !strings.Contains(stderr, tt.flag) || stdout != "" {
				t.Errorf("table: exit %d, stdout %q, stderr %q; want %d naming %s on stderr", code, stdout, stderr, tt.exit, tt.flag)
			}
			code, stdout, stderr = r.vifsec("", append([]string{"--format", "json"}, tt.args...)...)
			var body struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			dec := json.NewDecoder(strings.NewReader(stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil || body.Error == nil {
				t.Fatalf("json: stdout %q is not an error object: %v", stdout, err)
			}
			if code != tt.exit || body.Error.Code != tt.code || !strings.Contains(body.Error.Message, tt.flag) || stderr != "" {
				t.Errorf("json: exit %d, error %+v, stderr %q; want %d, code %s naming %s", code, *body.Error, stderr, tt.exit, tt.code, tt.flag)
			}
		})
	}

	// No daemon: exit 3, code unreachable.
	r.sock = filepath.Join(t.TempDir(), "absent.sock")
	code, stdout, _ := r.vifsec("", "--format", "json", "sa", "list")
	if code != exitUnreachable || !strings.Contains(stdout, `"code": "unreachable"`) {
		t.Errorf("unreachable: exit %d, stdout %q", code, stdout)
	}
}
