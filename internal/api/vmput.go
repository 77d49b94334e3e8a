package api

import (
	"fmt"
	"net/http"
)

// putVM is PUT /v2/vms/NAME (ext): attach the VM, or move an attached VM
// of the same origin to the request's device, or change nothing if it is
// attached as asked (daemon.RebindVM). The libvirt hook uses it at every
// domain start, where the tap has a new name.
func (s *server) putVM(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	change(w, r, http.StatusOK, func(req *VMAttachRequest) ([]string, error) {
		if req.VM == "" {
			req.VM = name
		}
		if req.VM != name {
			return nil, fmt.Errorf("--vm: the body names VM %q but the path names %q; give one name", req.VM, name)
		}
		v, err := req.Parse()
		if err != nil {
			return nil, err
		}
		_, err = s.d.RebindVM(v)
		return nil, err
	})
}
