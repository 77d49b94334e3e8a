package api

import (
	"fmt"
	"net/http"
)

// GET of one object by name: the object as its list shows it, or 404
// not_found naming the CLI flag that names such objects. SA and SP names
// may hold slashes (IKE's are ike/TENANT/POLICY/SPI-in), so their
// patterns take the rest of the path.
func (s *server) getRoutes(mux *http.ServeMux, p string) {
	mux.HandleFunc("GET "+p+"/tenants/{name}", func(w http.ResponseWriter, r *http.Request) {
		getOne(w, r.PathValue("name"), "tenant", "--tenant", s.tenants(), func(t Tenant) string { return t.Name })
	})
	mux.HandleFunc("GET "+p+"/vms/{name}", func(w http.ResponseWriter, r *http.Request) {
		getOne(w, r.PathValue("name"), "VM", "--vm", s.vms(), func(v VM) string { return v.Name })
	})
	mux.HandleFunc("GET "+p+"/sa/{name...}", func(w http.ResponseWriter, r *http.Request) {
		getOne(w, r.PathValue("name"), "SA", "--sa-name", s.sas(), func(x SA) string { return x.Name })
	})
	mux.HandleFunc("GET "+p+"/sp/{name...}", func(w http.ResponseWriter, r *http.Request) {
		getOne(w, r.PathValue("name"), "SP", "--sp-name", s.sps(), func(x SP) string { return x.Name })
	})
}

func getOne[T any](w http.ResponseWriter, name, what, flag string, list []T, nameOf func(T) string) {
	for _, x := range list {
		if nameOf(x) == name {
			writeJSON(w, http.StatusOK, x)
			return
		}
	}
	writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("%s: no %s named %q", flag, what, name)})
}
